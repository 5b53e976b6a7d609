"""Local development helper for an SQS emulator: create the FIFO queue and its DLQ, or send messages.

    python scripts/local_sqs.py create orders.fifo            # and orders-dlq.fifo, wired by RedrivePolicy
    python scripts/local_sqs.py send orders.fifo '{"hello": "world"}' --group g1 [--key k-1]

Uses the SDK's own settings: AWS_ENDPOINT_URL_SQS, AWS_REGION (or AWS_DEFAULT_REGION), credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid

import boto3


def client():  # type: ignore[no-untyped-def]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("sqs", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS"))


def create(name: str, max_receive_count: int) -> str:
    sqs = client()
    dlq_name = name.removesuffix(".fifo") + "-dlq.fifo"
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    print(url)
    return url


def send(name: str, body: str, group: str, key: str | None) -> None:
    sqs = client()
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = {"idempotency_key": {"DataType": "String", "StringValue": key}} if key else {}
    r = sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group,
        MessageDeduplicationId=uuid.uuid4().hex, MessageAttributes=attributes,
    )
    print(r["MessageId"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--max-receive-count", type=int, default=25)
    s = sub.add_parser("send")
    s.add_argument("name")
    s.add_argument("body")
    s.add_argument("--group", default="default")
    s.add_argument("--key")
    args = parser.parse_args()
    if args.command == "create":
        create(args.name, args.max_receive_count)
    else:
        send(args.name, args.body, args.group, args.key)


if __name__ == "__main__":
    main()
