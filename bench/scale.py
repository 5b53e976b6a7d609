"""Idempotency records at production size, and retention running beside the work: sqs2pg drains a backlog (fauxqs,
100 groups) into a database that already holds ``--records`` live records (spread over the last six days, in their
days' partitions, as a busy week leaves them) and ``--expired`` records 8 days old (retention 7 days), inserted with
plain INSERTs after the migrations. Not part of `scripts/bench.sh`'s default run (filling takes minutes).

    .venv/bin/python -m bench.scale [--records 0,10000000] [--expired 2000000] [--messages 30000] [--runs 2]

Per size it prints the drain's speed beside the empty table's of the same run (no records, no expired), and how
long after `sqs2pg run` started the expired records were gone (the target: within 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import time
import uuid
from pathlib import Path

import aioboto3
import asyncpg
from botocore.config import Config

from sqs2pg.db import retention

from . import report, servers, workloads

FILL = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)
SELECT $3 || i, sha256(i::text::bytea), 'bench.fifo', 'm-' || i, $4::timestamptz - (i % 40000) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) AS i
"""
EXPIRED = "SELECT count(*) FROM sqs2pg_idempotency WHERE committed_at < now() - interval '7 days'"


async def prepare(url: str, records: int, expired: int) -> None:
    """Live records over the last six days (each day's in its partition), expired ones 8 days old."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE sqs2pg_idempotency")
        today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
        days = [today - dt.timedelta(days=n) for n in range(1, 7)]
        for day in days:
            await retention.create_day(conn, "BEGIN", "public", day)
        step = 1_000_000
        for n, start in enumerate(range(0, records, step)):
            noon = dt.datetime.combine(days[n % len(days)], dt.time(12), dt.UTC)
            await conn.execute(FILL, start, min(records, start + step) - 1, "live-", noon)
        for start in range(0, expired, step):
            eight_days = await conn.fetchval("SELECT now() - interval '8 days'")
            await conn.execute(FILL, start, min(expired, start + step) - 1, "expired-", eight_days)
        await conn.execute("VACUUM ANALYZE sqs2pg_idempotency")
    finally:
        await conn.close()


async def gone_after(url: str, started: asyncio.Event) -> float | None:
    """Seconds from the service's start until no expired record is left (None: none to begin with)."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval(EXPIRED):
            return None
        await started.wait()
        t0 = time.perf_counter()
        while await conn.fetchval(EXPIRED):
            await asyncio.sleep(0.2)
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", default="0,10000000", help="live records, comma-separated sizes")
    p.add_argument("--expired", type=int, default=2_000_000, help="records 8 days old beside them")
    p.add_argument("--messages", type=int, default=30_000)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    p.add_argument("--log", default=".local/bench/scale.log")
    args = p.parse_args()
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    sizes = [("empty", 0, 0)] + [(f"{int(r):,} live + {args.expired:,} expired", int(r), args.expired)
                                 for r in args.records.split(",")]  # fmt: skip
    rates: dict[str, list[float]] = {}
    gone: dict[str, list[float]] = {}
    with servers.fauxqs(None) as endpoint:
        env = servers.aws_env(endpoint)
        os.environ.update(env)
        db_url = await servers.fresh_database(args.database_url, "sqs2pg_bench_scale")
        config = Config(region_name=servers.REGION, max_pool_connections=50, retries={"mode": "standard"})
        async with aioboto3.Session().client("sqs", config=config) as sqs:
            for r in range(args.runs):
                for name, records, expired in sizes:
                    await prepare(db_url, records, expired)
                    q = await workloads.make_queue(sqs, f"scale-{uuid.uuid4().hex[:10]}")
                    started = asyncio.Event()
                    watch = asyncio.create_task(gone_after(db_url, started))
                    result = await workloads.sqs2pg_backlog(
                        sqs, env, db_url, q, args.messages, args.groups, uuid.uuid4().hex, log, {},
                        keep_records=True, started=started,
                    )  # fmt: skip
                    seconds = await watch
                    await workloads.drop_queue(sqs, q)
                    if any(result[k] for k in ("lost", "duplicates", "order_violations")):
                        raise SystemExit(f"scale: not exactly once: {result}")
                    rates.setdefault(name, []).append(result["msgs_per_s"])
                    if seconds is not None:
                        gone.setdefault(name, []).append(seconds)
                    after = "" if seconds is None else f", expired gone {seconds:.1f} s after the start"
                    print(f"run {r + 1}: {name}: {result['msgs_per_s']:,.0f} msgs/s{after}", flush=True)
    base = statistics.median(rates["empty"])
    lines = [
        f"`python -m bench.scale --records {args.records} --expired {args.expired} --messages {args.messages}"
        f" --runs {args.runs}` ({dt.datetime.now(dt.UTC):%Y-%m-%d}, fauxqs, {args.groups} groups)",
        "",
        "| records | msgs/s (median, range) | vs empty | expired gone after (s, longest) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, _, _ in sizes:
        got, secs = rates[name], gone.get(name)
        lines.append(
            f"| {name} | {report.spread(got)} | {statistics.median(got) / base:.2f} "
            f"| {f'{max(secs):.1f}' if secs else '-'} |"
        )
    report.publish("scale", "Idempotency records at scale, retention running", lines)


if __name__ == "__main__":
    asyncio.run(main())
