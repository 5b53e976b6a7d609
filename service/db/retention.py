"""Retention: expired idempotency records, and the positions of groups that applied nothing for as long, are
deleted, by one replica at a time, in small batches."""

from __future__ import annotations

import asyncio

import asyncpg

_PRUNE_BATCH = """
DELETE FROM sqs2pg_idempotency WHERE idempotency_key IN (
    SELECT idempotency_key FROM sqs2pg_idempotency
    WHERE committed_at < now() - make_interval(secs => $1)
    ORDER BY committed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""
# A group's position goes with its records: a message older than the retention could be applied again anyway.
_PRUNE_POSITIONS_BATCH = """
DELETE FROM sqs2pg_group_positions WHERE (queue_name, message_group_id) IN (
    SELECT queue_name, message_group_id FROM sqs2pg_group_positions
    WHERE updated_at < now() - make_interval(secs => $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""
# Any 64-bit number unique to sqs2pg: the replica holding it is the one that prunes.
PRUNE_LOCK_ID = int.from_bytes(b"sqs2pg", "big")


async def prune(pool: asyncpg.Pool, retention_s: float, batch_size: int, pause_s: float = 0.05) -> int | None:
    """Delete expired idempotency records (how many: the result) and groups' positions in small batches; None if
    another replica is pruning."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK_ID):
            return None
        try:
            total = await _in_batches(conn, _PRUNE_BATCH, retention_s, batch_size, pause_s)
            await _in_batches(conn, _PRUNE_POSITIONS_BATCH, retention_s, batch_size, pause_s)
            return total
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK_ID)


async def _in_batches(
    conn: asyncpg.Connection, statement: str, retention_s: float, batch_size: int, pause_s: float
) -> int:
    total = 0
    while True:
        status = await conn.execute(statement, float(retention_s), batch_size)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch_size:
            return total
        await asyncio.sleep(pause_s)  # let other transactions in between batches
