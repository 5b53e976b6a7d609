"""The SQS emulators keep the FIFO promises the service's own tests rely on (real SQS keeps them too)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.integration


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
