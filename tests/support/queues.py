"""Creating the FIFO queue and its FIFO dead-letter queue with an aioboto3 client, for the tests, the benchmark
and the chaos soak (the attributes are sqs2pg's local SQS's own rule: service/sqs/local.py)."""

from __future__ import annotations

from typing import Any

from sqs2pg.sqs.local import DLQ_ATTRIBUTES, dlq_name, queue_attributes


async def create_fifo_queue(
    client: Any, name: str, *, max_receive_count: int = 10, visibility_timeout_s: int = 30
) -> tuple[str, str]:
    """``name``.fifo wired by its RedrivePolicy to ``name``-dlq.fifo; returns (queue URL, DLQ URL). Creating a queue
    that exists with the same attributes is a no-op on SQS."""
    name = name if name.endswith(".fifo") else name + ".fifo"
    dlq_url = (await client.create_queue(QueueName=dlq_name(name), Attributes=DLQ_ATTRIBUTES))["QueueUrl"]
    dlq_arn = (await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    attributes = queue_attributes(dlq_arn, max_receive_count, visibility_timeout_s)
    url = (await client.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    return url, dlq_url
