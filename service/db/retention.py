"""Retention: expired idempotency records, and the positions of groups that applied nothing for as long, are
deleted, by one replica at a time, in small batches."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from .tx import transaction

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
# Any 64-bit number unique to sqs2pg: a replica holds it for each batch it deletes, so two never prune at once.
# Transaction-scoped: behind a transaction pooler a session lock would stay on whichever server connection took
# it, and its unlock could land on another.
PRUNE_LOCK_ID = int.from_bytes(b"sqs2pg", "big")
_LOCK = "SELECT pg_try_advisory_xact_lock($1)"


class _Busy(Exception):
    """Another replica holds the pruning lock."""


async def prune(
    pool: asyncpg.Pool, retention_s: float, batch_size: int, pause_s: float = 0.05, begin: str = "BEGIN"
) -> int | None:
    """Delete expired idempotency records (how many: the result) and groups' positions in small batches, each in
    a transaction of its own that holds the pruning lock; None if another replica was pruning. One that starts
    while this one pauses between batches takes over, and this one stops: together they delete each row once."""
    async with pool.acquire() as conn:
        try:
            total = await _in_batches(conn, begin, _PRUNE_BATCH, retention_s, batch_size, pause_s)
        except _Busy as busy:
            return busy.args[0] or None
        with contextlib.suppress(_Busy):  # the other replica prunes the positions too
            await _in_batches(conn, begin, _PRUNE_POSITIONS_BATCH, retention_s, batch_size, pause_s)
        return total


async def _in_batches(
    conn: asyncpg.Connection, begin: str, statement: str, retention_s: float, batch_size: int, pause_s: float
) -> int:
    total = 0
    while True:
        async with transaction(conn, begin):
            if not await conn.fetchval(_LOCK, PRUNE_LOCK_ID):
                raise _Busy(total)
            status = await conn.execute(statement, float(retention_s), batch_size)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch_size:
            return total
        await asyncio.sleep(pause_s)  # let other transactions in between batches
