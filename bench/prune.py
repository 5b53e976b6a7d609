"""How fast retention deletes expired idempotency records, by batch size: the service's own pruning code
(service/db/retention.py) on a table filled with plain INSERTs of records older than the retention. Not part of
`scripts/bench.sh`'s default run (filling the table takes a while); the scale model in docs/performance.md
quotes it.

    .venv/bin/python -m bench.prune [--rows 1000000] [--batches 1000,10000,50000] [--writers 8] [--database-url URL]

For each batch size it fills a fresh table with ``--rows`` expired records (8 days old, retention 7 days), prunes
them with the service's pause between batches (50 ms), and prints rows deleted per second; with ``--writers N``,
N connections meanwhile insert new records as fast as they can, one per transaction (a drain's load on the same
table), and their rate is printed beside. Steady state needs pruning at least as fast as messages arrive,
whatever the retention: each message leaves one record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg

from sqs2pg.db.retention import prune

from .servers import fresh_database

FILL = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)
SELECT 'prune-' || i, '\\x00'::bytea, 'bench.fifo', 'm-' || i, now() - interval '8 days' + i * interval '1 microsecond'
FROM generate_series($1::bigint, $2::bigint) AS i
"""
RETENTION_S = 7 * 86400


async def write(url: str, stop: asyncio.Event, counter: list[int]) -> None:
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            await conn.execute(
                "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id) "
                "VALUES (gen_random_uuid()::text, '\\x00', 'bench.fifo', 'm')"
            )
            counter[0] += 1
    finally:
        await conn.close()


async def one(url: str, rows: int, batch: int, writers: int) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE sqs2pg_idempotency")
        for start in range(0, rows, 200_000):
            await conn.execute(FILL, start, min(rows, start + 200_000) - 1)
        await conn.execute("VACUUM ANALYZE sqs2pg_idempotency")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    stop, written = asyncio.Event(), [0]
    load = [asyncio.create_task(write(url, stop, written)) for _ in range(writers)]
    try:
        started = time.perf_counter()
        deleted = await prune(pool, RETENTION_S, batch)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.gather(*load)
        await pool.close()
    if deleted != rows:
        raise SystemExit(f"bench.prune: deleted {deleted} of {rows} rows")
    return rows / elapsed, written[0] / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", default="1000,10000,50000", help="batch sizes, comma-separated")
    parser.add_argument("--writers", type=int, default=0, help="connections inserting new records meanwhile")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin connection: a database sqs2pg_bench_prune is made (dropped first) beside it",
    )
    args = parser.parse_args()
    url = await fresh_database(args.database_url, "sqs2pg_bench_prune")
    print(f"{'batch size':>10}  {'expired':>10}  {'pruned/s':>8}  {'written/s':>9} ({args.writers} writers)")
    for batch in (int(b) for b in args.batches.split(",")):
        pruned, written = await one(url, args.rows, batch, args.writers)
        print(f"{batch:>10,}  {args.rows:>10,}  {pruned:>8,.0f}  {written:>9,.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
