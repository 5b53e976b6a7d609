"""Idempotency records in daily partitions (migration 0005, db/retention.py), against a real PostgreSQL: a key is
claimed once across partitions, even by two replicas on either side of a partition's boundary; expired records go
a day at a time; 0.3's table is taken over with its records."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from sqs2pg.db import migrate, retention
from sqs2pg.errors import Outcome
from sqs2pg.message import Message

from ..support.helpers import STORE_QUEUE as URL
from ..support.helpers import Queues, make_settings, open_store, queued, running, scratch_database, wait_until

pytestmark = pytest.mark.integration
RETENTION_S = 7 * 86400
WHERE = "SELECT tableoid::regclass::text FROM sqs2pg_idempotency WHERE idempotency_key = $1"


async def _split_today(db: asyncpg.Connection) -> dt.datetime:
    """Today's partition split in two at a moment two seconds ahead (server time); the moment."""
    today = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    boundary = await db.fetchval("SELECT now() + interval '2 seconds'")
    start, end = f"{today} 00:00:00+00", f"{today + dt.timedelta(days=1)} 00:00:00+00"
    await db.execute(f"DROP TABLE {retention.daily_name(today)}")
    for name, low, high in (("race_before", start, boundary.isoformat()), ("race_after", boundary.isoformat(), end)):
        await db.execute(f"CREATE TABLE {name} PARTITION OF sqs2pg_idempotency FOR VALUES FROM ('{low}') TO ('{high}')")
        await db.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (idempotency_key)")
    return boundary


@pytest.mark.parametrize("second", ["alone", "shared"])
async def test_two_replicas_racing_on_a_key_across_a_partition_boundary_apply_it_once(
    database_url: str, db: asyncpg.Connection, second: str
) -> None:
    """The first replica claims the key just before a boundary and holds its transaction open; the second starts
    after the boundary, so its record would go to another partition, which no unique index shares: it must wait
    for the first and then find the key, alone or in a shared transaction."""
    boundary = await _split_today(db)
    # the handlers write to a table with no unique key: only sqs2pg's claim stands between a key and a second write
    await db.execute("CREATE TABLE race_writes (key text)")
    entered, release = asyncio.Event(), asyncio.Event()

    async def write(conn: asyncpg.Connection, message: Message) -> None:
        await conn.execute("INSERT INTO race_writes VALUES ($1)", message.idempotency_key)

    async def slow(conn: asyncpg.Connection, message: Message) -> None:
        await write(conn, message)
        entered.set()
        await release.wait()

    first, other = await open_store(database_url, slow), await open_store(database_url, write)
    try:
        one = asyncio.create_task(first.apply(queued("k")))
        await asyncio.wait_for(entered.wait(), 10)
        await wait_until(lambda: _past(db, boundary))
        batch = [queued("k")] if second == "alone" else [queued("k"), queued("x")]
        two = asyncio.create_task(other.apply_many(batch))
        # the second replica waits at the key's lock (without one, it would be done: a second commit of the key)
        await wait_until(lambda: _waiting_on_a_key(db, two))
        release.set()
        assert await one == Outcome.COMMITTED
        assert (await two)[0] == Outcome.DUPLICATE
    finally:
        await first.close()
        await other.close()
    assert await db.fetchval("SELECT count(*) FROM race_writes WHERE key = 'k'") == 1
    assert [r[0] for r in await db.fetch(WHERE, "k")] == ["race_before"]
    if second == "shared":
        assert [r[0] for r in await db.fetch(WHERE, "x")] == ["race_after"]


async def _past(db: asyncpg.Connection, moment: dt.datetime) -> bool:
    return bool(await db.fetchval("SELECT now() > $1", moment))


async def _waiting_on_a_key(db: asyncpg.Connection, second: asyncio.Task[object]) -> bool:
    waiting = "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"
    return second.done() or bool(await db.fetchval(waiting))


async def test_a_redelivery_days_later_finds_its_key_in_an_older_partition(
    database_url: str, db: asyncpg.Connection
) -> None:
    yesterday = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date - 1")
    assert await retention.create_day(db, "BEGIN", "public", yesterday)
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " VALUES ('late', $1, 'q.fifo', 'id-late', now() - interval '1 day')",
        queued("late").body_sha256,
    )
    store = await open_store(database_url)
    try:
        assert await store.apply(queued("late")) == Outcome.DUPLICATE
        assert await store.apply_many([queued("late"), queued("new")]) == [Outcome.DUPLICATE, Outcome.COMMITTED]
    finally:
        await store.close()
    assert await db.fetchval("SELECT count(*) FROM events WHERE idempotency_key = 'late'") == 0
    assert [r[0] for r in await db.fetch(WHERE, "late")] == [retention.daily_name(yesterday)]


async def test_expired_records_go_a_day_at_a_time_and_the_rest_stay(database_url: str, db: asyncpg.Connection) -> None:
    """Records inserted with plain INSERTs: 9 days old in their own day's partition, 8 days old in the default one
    (no day of theirs exists), and today's: a pass drops the first, truncates the second, keeps the third."""
    today = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    old_day = today - dt.timedelta(days=9)
    assert await retention.create_day(db, "BEGIN", "public", old_day)
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " SELECT 'day-' || i, '\\x00'::bytea, 'q', 'm', $1::date + interval '1 hour' FROM generate_series(1, 3000) i"
        " UNION ALL SELECT 'old-' || i, '\\x00', 'q', 'm', now() - interval '8 days' FROM generate_series(1, 5000) i",
        old_day,
    )
    store = await open_store(database_url)
    try:
        assert await store.apply(queued("today")) == Outcome.COMMITTED
        assert await store.prune(RETENTION_S, 1000, pause_s=0) == 8000
        assert await store.prune(RETENTION_S, 1000, pause_s=0) == 0  # nothing left to do
    finally:
        await store.close()
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 1
    assert await db.fetchval("SELECT to_regclass($1)", retention.daily_name(old_day)) is None
    days = [retention.daily_name(today + dt.timedelta(days=n)) for n in range(retention.AHEAD_DAYS + 1)]
    for name in days:
        assert await db.fetchval("SELECT to_regclass($1)", name) is not None


async def test_records_that_expired_while_nothing_ran_are_gone_soon_after_the_service_starts(
    database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    """As after `sqs2pg migrate`: records 8 days old inserted with a plain INSERT (bench/scale.py does 2,000,000)
    are gone within a minute of the service starting, with no prune interval passing."""
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " SELECT 'old-' || i, '\\x00'::bytea, 'q', 'm', now() - interval '8 days' FROM generate_series(1, 20000) i"
    )
    expired = "SELECT count(*) FROM sqs2pg_idempotency WHERE committed_at < now() - interval '7 days'"
    async with running(make_settings(database_url, [queues.url], prune_interval_s="3600")):
        await wait_until(lambda: _none(db, expired), timeout_s=60)


async def _none(db: asyncpg.Connection, count: str) -> bool:
    return await db.fetchval(count) == 0


async def test_with_retention_0_records_are_kept_and_the_days_still_made(
    database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " VALUES ('ancient', '\\x00', 'q', 'm', now() - interval '3 years')"
    )
    tomorrow = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date + 1")
    await db.execute(f"DROP TABLE {retention.daily_name(tomorrow)}")
    store = await open_store(database_url)
    try:
        assert await store.prune(None, 1000) == 0
    finally:
        await store.close()
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 1
    assert await db.fetchval("SELECT to_regclass($1)", retention.daily_name(tomorrow)) is not None


async def test_a_day_missed_by_the_default_partition_is_moved_into_its_own(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Records that reached the default partition because their day was not there yet (no replica ran at
    midnight) move into the day's partition when a pass creates it."""
    later = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date + $1::int", retention.AHEAD_DAYS + 1)
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " SELECT 'ahead-' || i, '\\x00', 'q', 'm', $1::date + interval '1 hour' FROM generate_series(1, 10) i",
        later,
    )
    assert await retention.create_day(db, "BEGIN", "public", later)
    assert {r[0] for r in await db.fetch(WHERE.replace("= $1", "LIKE 'ahead-%'"))} == {retention.daily_name(later)}


async def test_a_03_table_with_records_is_taken_over_as_it_is(postgres_admin_url: str) -> None:
    """0.3's table (one of any size: here a few thousand rows) becomes the partition of what came before the
    migration, without being rewritten: keys in it are still found, expired ones are pruned row by row, new
    records go on; and a downgrade gives one table back with every record."""
    async with scratch_database(postgres_admin_url) as url:
        settings = make_settings(url, [URL])
        await asyncio.to_thread(migrate.upgrade, settings, "0004")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
                " SELECT 'old-' || i, '\\x00'::bytea, 'q', 'm', now() - interval '8 days'"
                " FROM generate_series(1, 2500) i UNION ALL"
                " SELECT 'recent-' || i, '\\x00', 'q', 'm', now() - interval '1 hour' FROM generate_series(1, 2500) i"
            )
            await conn.execute(
                "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id)"
                " VALUES ('k', $1, 'q.fifo', 'id-k')",
                queued("k").body_sha256,
            )
            file_before = await conn.fetchval("SELECT relfilenode FROM pg_class WHERE relname = 'sqs2pg_idempotency'")
            await asyncio.to_thread(migrate.upgrade, settings)
            assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'sqs2pg_idempotency'") == "p"
            # the same table, not a copy
            taken = "SELECT relfilenode FROM pg_class WHERE relname = 'sqs2pg_idempotency_before'"
            assert await conn.fetchval(taken) == file_before
            assert await conn.fetchval("SELECT count(*) FROM sqs2pg_idempotency_before") == 5001
            store = await open_store(url)
            try:
                assert await store.apply(queued("k")) == Outcome.DUPLICATE
                assert await store.apply(queued("new")) == Outcome.COMMITTED
                assert await store.prune(RETENTION_S, 1000, pause_s=0) == 2500
            finally:
                await store.close()
            assert (
                await conn.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE idempotency_key LIKE 'old-%'") == 0
            )
            assert await conn.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 2502
            await asyncio.to_thread(migrate.downgrade, settings, "0004")
            assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'sqs2pg_idempotency'") == "r"
            assert await conn.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 2502
        finally:
            await conn.close()
