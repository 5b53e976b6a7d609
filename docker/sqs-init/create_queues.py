"""One-shot init for the local stack: create the FIFO dead-letter queue and the FIFO queue wired to it.

Runs in the moto image (it ships python and boto3) against the emulator; idempotent, so a restart of the
stack finds the queues already there. Settings from the environment:
  AWS_ENDPOINT_URL_SQS (the emulator), AWS_REGION, QUEUE_NAME (orders), MAX_RECEIVE_COUNT (25).
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
from botocore.exceptions import EndpointConnectionError


def main() -> int:
    name = os.environ.get("QUEUE_NAME", "orders")
    max_receive_count = int(os.environ.get("MAX_RECEIVE_COUNT", "25"))
    sqs = boto3.client(
        "sqs",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS"),
    )
    for _ in range(60):  # the emulator may still be starting
        try:
            sqs.list_queues()
            break
        except EndpointConnectionError:
            time.sleep(1)
    else:
        print("create_queues: the SQS emulator did not answer within 60 s", file=sys.stderr)
        return 1

    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    print(f"queue {url}\ndead-letter queue {dlq_url} (maxReceiveCount {max_receive_count})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
