"""Local development helper for an SQS emulator: create the FIFO queue and its DLQ (send with `sqs2pg send`).

    python scripts/local_sqs.py create orders.fifo            # and orders-dlq.fifo, wired by RedrivePolicy

Uses the SDK's own settings: AWS_ENDPOINT_URL_SQS, AWS_REGION (or AWS_DEFAULT_REGION), credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aioboto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.queues import create_fifo_queue  # noqa: E402 - after the repository is on the path


def _client():  # type: ignore[no-untyped-def]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return aioboto3.Session().client("sqs", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS"))


async def create(name: str, max_receive_count: int) -> None:
    async with _client() as sqs:
        url, _ = await create_fifo_queue(sqs, name, max_receive_count=max_receive_count)
    print(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--max-receive-count", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(create(args.name, args.max_receive_count))


if __name__ == "__main__":
    main()
