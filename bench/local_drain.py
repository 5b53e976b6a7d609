"""README's first command on a backlog: 300 messages over 7 groups sent while it is stopped, then
`scripts/run-local.sh` started; how long from its first commit to its last, and from its start.

    .venv/bin/python -m bench.local_drain            # on run-local.sh's own emulator (the moto launcher)
    .venv/bin/python -m bench.local_drain --plain    # on plain `python -m moto.server`

It drops and recreates the database sqs2pg_local that run-local.sh uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import asyncpg
import boto3

from sqs2pg.sqs.local import create_queue
from tests.support.servers import ROOT, free_port, start_moto, wait_for_port

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plain", action="store_true", help="plain moto, not sqs2pg's local SQS")
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--groups", type=int, default=7)
    args = p.parse_args()

    port = free_port()
    if args.plain:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        emulator = start_moto(port)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    try:
        wait_for_port(port, emulator)
        _fresh_database()
        sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=env["AWS_ENDPOINT_URL_SQS"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        url = create_queue(sqs, "orders.fifo")
        sent = [(json.dumps({"seq": s}), f"g{g}", f"{g}-{s}") for s in range(args.messages) for g in range(args.groups)]
        sent = sent[: args.messages]
        for i in range(0, len(sent), 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(j), "MessageBody": b, "MessageGroupId": g, "MessageDeduplicationId": d}
                    for j, (b, g, d) in enumerate(sent[i : i + 10])
                ],
            )
        started = time.monotonic()
        service = subprocess.Popen(
            ["scripts/run-local.sh"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            span = _wait_for(len(sent), started)
            total = time.monotonic() - started
        finally:
            os.killpg(service.pid, signal.SIGINT)
            service.wait(30)
        print(
            f"{'plain moto' if args.plain else 'run-local.sh own emulator'}: "
            f"{len(sent)} messages over {args.groups} groups: "
            f"first to last commit {span:.1f} s; {total:.1f} s from the script's start"
        )
    finally:
        emulator.terminate()
        emulator.wait(10)


def _fresh_database() -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN)
        try:
            await conn.execute('DROP DATABASE IF EXISTS "sqs2pg_local" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


def _wait_for(n: int, started: float, timeout_s: float = 600) -> float:
    async def run() -> float:
        while time.monotonic() - started < timeout_s:
            try:
                conn = await asyncpg.connect(ADMIN.rsplit("/", 1)[0] + "/sqs2pg_local")
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(0.2)
                continue
            try:
                while time.monotonic() - started < timeout_s:
                    if (
                        await conn.fetchval("SELECT to_regclass('events') IS NOT NULL")
                        and await conn.fetchval("SELECT count(*) FROM events") >= n
                    ):
                        return float(
                            await conn.fetchval(
                                "SELECT extract(epoch FROM max(committed_at) - min(committed_at)) FROM events"
                            )
                        )
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()
        raise SystemExit(f"not drained within {timeout_s} s")

    return asyncio.run(run())


if __name__ == "__main__":
    main()
