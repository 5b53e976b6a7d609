"""The SQS emulators keep the FIFO promises the service's own tests rely on (real SQS keeps them too)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

# They test the servers the suite runs on, not sqs2pg: the long tier (`scripts/test.sh --long`, and CI).
pytestmark = [pytest.mark.integration, pytest.mark.long]


async def test_concurrent_receives_never_get_one_group_twice(sqs_client) -> None:
    """Plain moto hands one group to two concurrent receivers now and then (9 in 60 rounds of 4 receives);
    docker/moto/moto_sqs_server.py exists to stop that, and fauxqs never does it."""
    overlaps = 0
    for _ in range(15):
        url = (
            await sqs_client.create_queue(
                QueueName=f"lock-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
            )
        )["QueueUrl"]
        for b in range(6):
            await sqs_client.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": "x",
                        "MessageGroupId": f"g{i % 3}",
                        "MessageDeduplicationId": f"{b}-{i}",
                    }
                    for i in range(10)
                ],
            )

        async def receive(url: str = url) -> set[str]:
            r = await sqs_client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageSystemAttributeNames=["All"]
            )
            return {m["Attributes"]["MessageGroupId"] for m in r.get("Messages", [])}

        seen: set[str] = set()
        for groups in await asyncio.gather(*(receive() for _ in range(4))):
            overlaps += len(seen & groups)
            seen |= groups
        await sqs_client.delete_queue(QueueUrl=url)
    assert overlaps == 0


async def test_moto_keeps_a_message_sent_while_others_are_deleted(sqs_client) -> None:
    """Messages deleted by concurrent calls while others are sent: every delete sticks and every new message is
    received exactly once. Plain moto 5.2's ``Queue.delete_message`` rebuilds the queue's message list unlocked,
    so on its threaded server a concurrent delete is undone (the message stays in flight) or a message sent
    meanwhile is dropped (the chaos soak's lost message); docker/moto/moto_sqs_server.py serialises them.

    moto's rebuild is a pass over every message in the queue, so a backlog makes the race window wide enough to
    hit in a few seconds: delayed messages, in a standard queue (the race is in code both kinds share; moto's
    FIFO sends scan the queue for duplicates, which would make building the backlog slow)."""
    url = (await sqs_client.create_queue(QueueName=f"race-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    backlog, in_flight, tasks = 1500, 200, 8
    for _ in range(backlog // 10):
        entries = [{"Id": str(i), "MessageBody": "later", "DelaySeconds": 900} for i in range(10)]
        await sqs_client.send_message_batch(QueueUrl=url, Entries=entries)
    for b in range(in_flight // 10):
        entries = [{"Id": str(i), "MessageBody": f"old-{b}-{i}"} for i in range(10)]
        await sqs_client.send_message_batch(QueueUrl=url, Entries=entries)
    handles: list[str] = []
    while len(handles) < in_flight:
        r = await sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        handles += [m["ReceiptHandle"] for m in r.get("Messages", [])]
    sent: list[str] = []

    async def delete(share: list[str]) -> None:
        for k in range(0, len(share), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(share[k : k + 10])]
            result = await sqs_client.delete_message_batch(QueueUrl=url, Entries=entries)
            assert not result.get("Failed"), result["Failed"]

    async def send(prefix: str) -> None:
        for b in range(in_flight // tasks // 10):
            entries = [{"Id": str(i), "MessageBody": f"{prefix}-{b}-{i}"} for i in range(10)]
            result = await sqs_client.send_message_batch(QueueUrl=url, Entries=entries)
            assert not result.get("Failed"), result["Failed"]
            sent.extend(e["MessageBody"] for e in entries)

    await asyncio.gather(*(delete(handles[k::tasks]) for k in range(tasks)), *(send(f"new{k}") for k in range(tasks)))
    attributes = (
        await sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    )["Attributes"]
    received: Counter[str] = Counter()
    while r := (await sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)).get(
        "Messages"
    ):
        received.update(m["Body"] for m in r)
    await sqs_client.delete_queue(QueueUrl=url)
    undone = int(attributes["ApproximateNumberOfMessagesNotVisible"])
    lost = sorted(set(sent) - set(received))
    twice = sorted(k for k, n in received.items() if n > 1)
    assert (undone, len(lost), len(twice)) == (0, 0, 0), (
        f"{undone} deletes undone (still in flight), {len(lost)} of {len(sent)} new messages lost {lost[:5]}, "
        f"{len(twice)} received twice"
    )
