"""The migration from 0.3's table (migration 0005) on a table of production size, while a 0.3 replica keeps
writing: how long `sqs2pg migrate` takes, and the longest any of the replica's writes waited (what the migration
blocked). Not part of `scripts/bench.sh`'s default run (filling takes minutes).

    .venv/bin/python -m bench.migrate_03 [--records 10000000]

The writer inserts records as 0.3 claimed them (``ON CONFLICT (idempotency_key) DO NOTHING``), one per
transaction, until the swap makes that statement fail (0.3 cannot run against the partitioned table: the upgrade
stops it first, docs/operations.md); its longest successful write is printed beside the migration's time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg

from sqs2pg.db import migrate
from tests.support.helpers import make_settings, with_database

FILL = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)
SELECT 'old-' || i, sha256(i::text::bytea), 'bench.fifo', 'm-' || i, now() - (i % 600000) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) AS i
"""
CLAIM_03 = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id) VALUES ($1, '\\x00', 'q', 'm')
ON CONFLICT (idempotency_key) DO NOTHING
"""


async def write(url: str, stop: asyncio.Event) -> tuple[int, float]:
    """Writes until stopped or refused: how many, and the longest one."""
    conn = await asyncpg.connect(url)
    n, longest = 0, 0.0
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                await conn.execute(CLAIM_03, f"new-{n}")
            except asyncpg.PostgresError:
                break  # the table is partitioned now
            longest = max(longest, time.perf_counter() - t0)
            n += 1
    finally:
        await conn.close()
    return n, longest


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10_000_000)
    p.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = p.parse_args()
    admin = await asyncpg.connect(args.database_url)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "sqs2pg_bench_migrate" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "sqs2pg_bench_migrate"')
    finally:
        await admin.close()
    url = with_database(args.database_url, "sqs2pg_bench_migrate")
    await asyncio.to_thread(migrate.upgrade, make_settings(url, ["http://x/1/q.fifo"]), "0004")  # as 0.3 left it
    conn = await asyncpg.connect(url)
    try:
        for start in range(0, args.records, 1_000_000):
            await conn.execute(FILL, start, min(args.records, start + 1_000_000) - 1)
        await conn.execute("VACUUM ANALYZE sqs2pg_idempotency")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('sqs2pg_idempotency'))")
    finally:
        await conn.close()
    stop = asyncio.Event()
    writer = asyncio.create_task(write(url, stop))
    await asyncio.sleep(1)  # the writer is going
    t0 = time.perf_counter()
    await asyncio.to_thread(migrate.upgrade, make_settings(url, ["http://x/1/q.fifo"]))
    took = time.perf_counter() - t0
    stop.set()
    writes, longest = await writer
    conn = await asyncpg.connect(url)
    try:
        kept = await conn.fetchval("SELECT count(*) FROM sqs2pg_idempotency_before")
    finally:
        await conn.close()
    print(
        f"{args.records:,} records ({size}): migrated in {took:.1f} s; the 0.3 writer made {writes:,} writes "
        f"meanwhile, the longest {longest * 1000:.0f} ms; {kept:,} records in sqs2pg_idempotency_before"
    )


if __name__ == "__main__":
    asyncio.run(main())
