"""The peer: aws-sqs-consumer 0.0.15 from PyPI, the consumer a team would pick up instead of writing one, doing
sqs2pg's work its own way: batches of 10 received, one transaction per message (the idempotency record and
the event, as sqs2pg writes them), then the library's DeleteMessageBatch. Run as its own process:

    python -m bench.peer --queue-url URL --database-url URL --messages N
"""

from __future__ import annotations

import argparse
import hashlib
import os

import psycopg
from aws_sqs_consumer import Consumer, Message

_KEY = (
    "INSERT INTO bench_peer_keys (idempotency_key, body_sha256, queue_name, message_id) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)
_EVENT = (
    "INSERT INTO bench_peer (idempotency_key, queue_name, message_group_id, message_id, body, sent_at) "
    "VALUES (%s, %s, %s, %s, %s::jsonb, to_timestamp(%s / 1000.0)) ON CONFLICT (idempotency_key) DO NOTHING"
)


class PeerConsumer(Consumer):  # type: ignore[misc]
    def __init__(self, queue_url: str, database_url: str, messages: int) -> None:
        super().__init__(
            queue_url=queue_url,
            region=os.environ["AWS_REGION"],
            batch_size=10,
            wait_time_seconds=1,
            attribute_names=["All"],
            visibility_timeout_seconds=30,
        )
        self._db = psycopg.connect(database_url, autocommit=True)  # each message in its own transaction block
        self._queue = queue_url.rsplit("/", 1)[-1]
        self._left = messages

    def handle_message_batch(self, messages: list[Message]) -> None:
        for m in messages:
            key = m.Attributes["MessageDeduplicationId"]
            with self._db.transaction(), self._db.cursor() as cur:
                cur.execute(_KEY, (key, hashlib.sha256(m.Body.encode()).digest(), self._queue, m.MessageId))
                if cur.rowcount:
                    cur.execute(
                        _EVENT,
                        (
                            key,
                            self._queue,
                            m.Attributes["MessageGroupId"],
                            m.MessageId,
                            m.Body,
                            int(m.Attributes["SentTimestamp"]),
                        ),
                    )
        self._left -= len(messages)
        if self._left <= 0:
            self.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queue-url", required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--messages", type=int, required=True)
    args = p.parse_args()
    consumer = PeerConsumer(args.queue_url, args.database_url, args.messages)
    consumer.start()


if __name__ == "__main__":
    main()
