"""Creating the FIFO queue and its FIFO dead-letter queue: one function for the tests, the benchmark and
scripts/local_sqs.py. (docker/sqs-init/create_queues.py does the same inside moto's image, which has boto3
but not this project.)"""

from __future__ import annotations

import json
from typing import Any


async def create_fifo_queue(
    client: Any, name: str, *, max_receive_count: int = 10, visibility_timeout_s: int = 30
) -> tuple[str, str]:
    """``name``.fifo wired by its RedrivePolicy to ``name``-dlq.fifo; returns (queue URL, DLQ URL). ``client`` is
    an aioboto3 SQS client. Creating a queue that exists with the same attributes is a no-op on SQS."""
    base = name.removesuffix(".fifo")
    # 1 MiB, SQS's largest message, set explicitly on both (as the Terraform module does: its provider's
    # default is still 256 KiB)
    size = {"MaximumMessageSize": "1048576"}
    dlq_url = (await client.create_queue(QueueName=f"{base}-dlq.fifo", Attributes={"FifoQueue": "true", **size}))[
        "QueueUrl"
    ]
    dlq_arn = (await client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    url = (
        await client.create_queue(
            QueueName=f"{base}.fifo",
            Attributes={
                "FifoQueue": "true",
                **size,
                "VisibilityTimeout": str(visibility_timeout_s),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
            },
        )
    )["QueueUrl"]
    return url, dlq_url
