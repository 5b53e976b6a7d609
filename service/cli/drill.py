"""`sqs2pg drill`: a failover drill on a deployed stack. It sends a numbered workload through the real queue
(messages marked with the attribute ``sqs2pg_drill``, the run's id) while you fail the database over (the
Terraform module's FIS experiment, or by hand); the service applies marked messages to its own table
``sqs2pg_drill``, never through your handler (db/drill.py), so a drill is safe on a live queue. The command then
reads that table and reports what was lost, applied twice or applied out of order per group, with the longest
pause in applying (the time to recover) and the send-to-apply latencies. It exits 1 if any message was lost,
duplicated or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..config import Settings
from ..db import drill, migrate
from ..errors import StartupError
from ..message import DRILL_ATTRIBUTE
from .common import EXIT_FAILED, RAW, Command, database, positive
from .send import open_producer


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "drill",
        help="send a numbered workload and report lost, duplicated and reordered (run it during a failover)",
        formatter_class=RAW,
        description="A failover drill on a deployed stack: sends --messages numbered messages over --groups groups "
        "at --rate per second, marked with the attribute sqs2pg_drill (the service applies them to its table "
        "sqs2pg_drill, never to your handler, so it is safe on a live queue), waits for them, and reports lost, "
        "applied twice and out of order, with the longest pause in applying. Start the failover (the Terraform "
        "module's FIS experiment) while it sends. Needs DATABASE_URL and SQS_QUEUE_URLS.",
        epilog="exit 0 when nothing was lost, duplicated or reordered, 1 otherwise",
    )
    p.add_argument(
        "--queue", help="a queue named in SQS_QUEUE_URLS, or any queue URL (default: the first of SQS_QUEUE_URLS)"
    )
    p.add_argument("--messages", type=positive, default=1200, help="messages to send (default 1200)")
    p.add_argument("--groups", type=positive, default=20, help="message groups (default 20)")
    p.add_argument("--rate", type=positive, default=20, help="messages per second (default 20: a minute of sends)")
    p.add_argument(
        "--wait-s", type=positive, default=600, help="how long to wait for the last message after sending (600)"
    )
    return p


async def run(settings: Settings, args: argparse.Namespace) -> int:
    plan = Plan(args.messages, args.groups, float(args.rate), float(args.wait_s))
    await (await database(settings)).close()  # a database that does not answer is said before anything is sent
    producer = await open_producer(settings, args.queue)
    run_id = new_run_id()
    print(
        f"drill {run_id}: sending {plan.messages} messages over {plan.groups} groups at {plan.rate:g}/s to "
        f"{producer.queue_name}; fail the database over now",
        flush=True,
    )
    last = time.monotonic()

    def progress(sent: int, failed: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(f"... {sent} sent, {failed} failed to send", file=sys.stderr, flush=True)

    try:
        sent, failed = await send(producer, run_id, plan, progress)
    finally:
        await producer.close()
    deadline = time.monotonic() + plan.wait_s
    applied = -1
    while True:  # the database may be failing over right now: reconnect each round
        try:
            conn = await migrate.connect(settings)
            try:
                applied = await drill.applied(conn, run_id)
                if applied >= sent or time.monotonic() > deadline:
                    result = await drill.report(conn, run_id, sent, failed)
                    break
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"the database did not answer to read the drill's results: {exc}") from exc
        print(f"... {max(applied, 0)} of {sent} applied", file=sys.stderr, flush=True)
        await asyncio.sleep(2)
    return 0 if print_report(result, plan.wait_s) else EXIT_FAILED


@dataclass(frozen=True)
class Plan:
    messages: int
    groups: int
    rate: float  # messages per second
    wait_s: float  # how long to wait for the last message after sending


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


async def send(producer: Any, run_id: str, plan: Plan, progress: Any = None) -> tuple[int, int]:
    """Send the plan's messages at its rate, seq 0.. per group in order; returns (sent, failed)."""
    from ..producer import Sent, Write

    per_group = [0] * plan.groups
    sent = failed = 0
    start = time.monotonic()
    batch = 10
    for first in range(0, plan.messages, batch):
        writes = []
        for i in range(first, min(first + batch, plan.messages)):
            g = i % plan.groups
            body = {"seq": per_group[g], "sent_ms": time.time() * 1000}
            per_group[g] += 1
            writes.append(
                Write(body, f"drill-{run_id}-{g}", f"drill-{run_id}-{g}-{body['seq']}", {DRILL_ATTRIBUTE: run_id})
            )
        results = await producer.send_many(writes)
        sent += sum(isinstance(r, Sent) for r in results)
        failed += sum(not isinstance(r, Sent) for r in results)
        if progress is not None:
            progress(sent, failed)
        # pace: the next batch leaves when the rate says so
        delay = start + (first + batch) / plan.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent, failed


def print_report(r: dict[str, Any], wait_s: float) -> bool:
    """Print the report; True when nothing was lost, duplicated or reordered. ``wait_s``: how long the command
    waited after the last send (a message not applied by then is counted lost, and the report says where to
    look: nothing may be consuming the queue)."""
    ok = bool(r["lost"] == 0 and r["duplicated"] == 0 and r["reordered"] == 0 and r["send_failed"] == 0)
    print(f"drill {r['run']}: {'PASSED' if ok else 'FAILED'}")
    print(f"  sent {r['sent']} ({r['send_failed']} failed to send), applied {r['applied']}")
    print(f"  lost {r['lost']}, applied twice {r['duplicated']}, out of order {r['reordered']}")
    if r["lost"]:
        print(
            f"  ({r['lost']} not applied within {wait_s:g} s of the last send: "
            + (
                "nothing was applied: is sqs2pg running on this queue, with this database? "
                if r["applied"] == 0
                else "are they still in the queue (`sqs2pg dlq stats`), or in its DLQ? "
            )
            + "Wait longer with --wait-s.)"
        )
    print(
        f"  longest pause in applying (time to recover) {r['longest_pause_s']} s; send-to-apply latency "
        f"p50 {r['latency_p50_s']} s, p99 {r['latency_p99_s']} s, max {r['latency_max_s']} s"
    )
    sys.stdout.flush()
    return ok


COMMAND = Command("drill", add_parser, run)
