"""Retention: idempotency records past SQS2PG_IDEMPOTENCY_RETENTION_DAYS go a day at a time, and the positions of
groups that applied nothing for as long go with them; by one replica at a time.

The records live in daily partitions (migration 0005). A pass:

1. makes sure today's partition and the next ``AHEAD_DAYS`` exist (a day's rows that reached the default
   partition before it did are moved into it);
2. truncates and drops every day that ended more than the retention ago: its records are gone at once, however
   many (a record lives for at least the retention and less than a day more);
3. empties the partitions no day bounds (the default, and 0.3's table attached as ``_before``): truncated when all
   they hold has expired, otherwise their expired rows deleted in small batches, as 0.3 pruned;
4. deletes groups' positions not moved for the retention, in batches.

Each step runs in its own short transaction holding the pruning lock (transaction-scoped: behind a transaction
pooler a session lock would stay on whichever server connection took it) with a lock timeout, so a partition's
DDL never queues the claims behind it for long; what could not be done is tried again on the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from .tx import transaction

TABLE = "sqs2pg_idempotency"
AHEAD_DAYS = 2
_DAILY = re.compile(rf"^{TABLE}_p(\d{{8}})$")
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"
# Any 64-bit number unique to sqs2pg: a replica holds it for each step, so two never prune at once.
PRUNE_LOCK_ID = int.from_bytes(b"sqs2pg", "big")
_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
_PARTITIONS = f"""
SELECT c.relname, c.relnamespace::regnamespace::text AS schema, greatest(c.reltuples, 0)::bigint AS estimate
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass('{TABLE}')
"""
_NOW = f"""
SELECT (now() AT TIME ZONE 'UTC')::date AS today, now() - make_interval(secs => $1) AS cutoff,
       (SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass('{TABLE}')) AS schema
"""
# A group's position goes with its records: a message older than the retention could be applied again anyway.
_PRUNE_POSITIONS_BATCH = """
DELETE FROM sqs2pg_group_positions WHERE (queue_name, message_group_id) IN (
    SELECT queue_name, message_group_id FROM sqs2pg_group_positions
    WHERE updated_at < $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""


class _Busy(Exception):
    """Another replica holds the pruning lock."""


@dataclass(frozen=True)
class Partition:
    schema: str
    name: str
    estimate: int  # rows, as the planner last counted them

    @property
    def qualified(self) -> str:
        return f'{self.schema}."{self.name}"'

    @property
    def day(self) -> dt.date | None:
        """The UTC day a daily partition holds; None for the default and 0.3's table."""
        found = _DAILY.match(self.name)
        return None if found is None else dt.datetime.strptime(found[1], "%Y%m%d").date()


def daily_name(day: dt.date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


async def prune(
    pool: asyncpg.Pool, retention_s: float | None, batch_size: int, pause_s: float = 0.05, begin: str = "BEGIN"
) -> int | None:
    """One pass (see above; with ``retention_s`` None, records are kept for ever: the days are only created). How
    many records went (a dropped day's as the planner last counted them), or None if another replica was pruning.
    One that starts while this one pauses takes over, and this one stops."""
    total: int | None = None
    async with pool.acquire() as conn:
        try:
            today, cutoff, schema = await _locked(conn, begin, _NOW, float(retention_s or 0))
            total = 0
            await _create_days(conn, begin, schema, today)
            if retention_s is None:
                return total
            for part in await _partitions(conn):
                if part.day is None:
                    total += await _empty(conn, begin, part, cutoff, batch_size, pause_s)
                elif dt.datetime.combine(part.day + dt.timedelta(days=1), dt.time(), dt.UTC) <= cutoff:
                    total += await _drop_day(conn, begin, part)
            await _in_batches(conn, begin, _PRUNE_POSITIONS_BATCH, cutoff, batch_size, pause_s)
        except _Busy as busy:  # another replica took over between two steps: it goes on from here
            if total is not None:
                total += busy.args[0]
    return total


async def prepare(conn: asyncpg.Connection, begin: str = "BEGIN") -> list[str]:
    """Create today's partition and the next AHEAD_DAYS where missing (`sqs2pg migrate` after the migrations);
    the names of those created."""
    try:
        today, _, schema = await _locked(conn, begin, _NOW, 0.0)
        return await _create_days(conn, begin, schema, today)
    except _Busy:  # a running service is pruning: it creates them
        return []


async def _create_days(conn: asyncpg.Connection, begin: str, schema: str, today: dt.date) -> list[str]:
    days = [today + dt.timedelta(days=n) for n in range(AHEAD_DAYS + 1)]
    return [daily_name(day) for day in days if await create_day(conn, begin, schema, day)]


async def _partitions(conn: asyncpg.Connection) -> list[Partition]:
    return [Partition(r["schema"], r["relname"], r["estimate"]) for r in await conn.fetch(_PARTITIONS)]


@contextlib.asynccontextmanager
async def _step(conn: asyncpg.Connection, begin: str, done: int = 0, ddl: bool = False) -> AsyncIterator[None]:
    """One step of a pass: a transaction holding the pruning lock (``_Busy(done)`` when another replica holds it:
    ``done``, what this pass did so far), with the lock timeout where the step takes a table's lock."""
    async with transaction(conn, begin):
        if not await conn.fetchval(_LOCK, PRUNE_LOCK_ID):
            raise _Busy(done)
        if ddl:
            await conn.execute(_LOCK_TIMEOUT)
        yield


async def _locked(conn: asyncpg.Connection, begin: str, query: str, *args: object) -> asyncpg.Record:
    async with _step(conn, begin):
        return await conn.fetchrow(query, *args)


async def _rows(conn: asyncpg.Connection, part: Partition) -> int:
    """How many records a partition holds, as the planner last counted them (counted if it never did)."""
    return int(part.estimate or await conn.fetchval(f"SELECT count(*) FROM {part.qualified}"))


async def create_day(conn: asyncpg.Connection, begin: str, schema: str, day: dt.date) -> bool:
    """Attach ``day``'s partition unless there is one: built beside the table and attached (which locks the table
    only against other DDL), after moving in any of its rows the default partition took meanwhile. False when it
    exists, or when its range is another partition's (0.3's table covers the days it was migrated in)."""
    name = daily_name(day)
    qualified = f'{schema}."{name}"'
    start, end = day.isoformat(), (day + dt.timedelta(days=1)).isoformat()
    bounds = f"FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
    in_day = f"committed_at >= '{start} 00:00:00+00' AND committed_at < '{end} 00:00:00+00'"
    try:
        async with _step(conn, begin, ddl=True):
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified):
                return False
            await conn.execute("SAVEPOINT day")
            await conn.execute(f"""
                CREATE TABLE {qualified} (LIKE {schema}.{TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                ALTER TABLE {qualified} ADD PRIMARY KEY (idempotency_key),
                    ADD CONSTRAINT "{name}_range" CHECK ({in_day})
            """)
            if await conn.fetchval(f"SELECT EXISTS (SELECT FROM {schema}.{TABLE}_default WHERE {in_day})"):
                # no claim may look for a key while its record moves: the whole table, for a moment
                await conn.execute(f"LOCK TABLE {schema}.{TABLE} IN ACCESS EXCLUSIVE MODE")
                await conn.execute(f"""
                    WITH moved AS (DELETE FROM {schema}.{TABLE}_default WHERE {in_day} RETURNING *)
                    INSERT INTO {qualified} SELECT * FROM moved
                """)
            try:
                await conn.execute(f"ALTER TABLE {schema}.{TABLE} ATTACH PARTITION {qualified} FOR VALUES {bounds}")
            except asyncpg.InvalidObjectDefinitionError:  # 42P17: 0.3's table holds these days
                await conn.execute("ROLLBACK TO SAVEPOINT day")  # the table, and any rows moved, undone
                return False
    except asyncpg.LockNotAvailableError:  # claims held the table for 2 s: the next pass tries again
        return False
    return True


async def _drop_day(conn: asyncpg.Connection, begin: str, part: Partition) -> int:
    """Truncate a day past the retention (its records gone at once; the lock is on the day alone), then drop it
    (which locks the whole table for a moment: if that times out, the next pass drops it)."""
    try:
        async with _step(conn, begin, ddl=True):
            count = await _rows(conn, part)
            await conn.execute(f"TRUNCATE {part.qualified}")
    except asyncpg.LockNotAvailableError:
        return 0
    with contextlib.suppress(asyncpg.LockNotAvailableError):
        async with _step(conn, begin, done=count, ddl=True):
            await conn.execute(f"DROP TABLE {part.qualified}")
    return count


async def _empty(
    conn: asyncpg.Connection, begin: str, part: Partition, cutoff: dt.datetime, batch_size: int, pause_s: float
) -> int:
    """A partition no day bounds: truncated if all it holds has expired, else its expired rows deleted."""
    newest = f"SELECT max(committed_at) FROM {part.qualified}"
    async with _step(conn, begin):
        if (seen := await conn.fetchval(newest)) is None:
            return 0
    if seen < cutoff:
        try:
            async with _step(conn, begin, ddl=True):
                # locked first: a claim still in flight into this partition commits before max() is read again,
                # and is seen (a TRUNCATE that waited for it would take it with the expired)
                await conn.execute(f"LOCK TABLE {part.qualified} IN ACCESS EXCLUSIVE MODE")
                if (await conn.fetchval(newest) or cutoff) < cutoff:
                    count = await _rows(conn, part)
                    await conn.execute(f"TRUNCATE {part.qualified}")
                    return count
        except asyncpg.LockNotAvailableError:
            return 0
    batch = f"""
    DELETE FROM {part.qualified} WHERE idempotency_key IN (
        SELECT idempotency_key FROM {part.qualified} WHERE committed_at < $1
        ORDER BY committed_at LIMIT $2 FOR UPDATE SKIP LOCKED
    )
    """
    return await _in_batches(conn, begin, batch, cutoff, batch_size, pause_s)


async def _in_batches(
    conn: asyncpg.Connection, begin: str, statement: str, cutoff: dt.datetime, batch_size: int, pause_s: float
) -> int:
    total = 0
    while True:
        async with _step(conn, begin, done=total):
            status = await conn.execute(statement, cutoff, batch_size)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch_size:
            return total
        await asyncio.sleep(pause_s)  # let other transactions in between batches
