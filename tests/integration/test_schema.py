"""Migrations and idempotency-record pruning against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from sqs2pg.db import migrate
from sqs2pg.db.retention import PRUNE_LOCK_ID
from sqs2pg.db.store import Store
from sqs2pg.handler import insert_event

from ..support.helpers import make_settings, scratch_database

pytestmark = pytest.mark.integration

TABLES = (
    "SELECT array_agg(relname::text ORDER BY relname) FROM pg_class"
    " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition"
)
# The idempotency records' partitions (migration 0005), oldest first
PARTITIONS = (
    "SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'sqs2pg_idempotency'::regclass"
)


async def test_upgrade_from_empty_to_head_then_downgrade_and_upgrade_again(postgres_admin_url: str) -> None:
    async with scratch_database(postgres_admin_url) as url:
        settings = make_settings(url, ["http://x/1/q.fifo"])
        conn = await asyncpg.connect(url)
        try:
            assert await migrate.current_revision(conn) is None
            await asyncio.to_thread(migrate.upgrade, settings)
            assert await migrate.current_revision(conn) == migrate.head_revision(settings)
            assert await conn.fetchval(TABLES) == [
                "events",
                "sqs2pg_alembic_version",
                "sqs2pg_drill",
                "sqs2pg_group_positions",
                "sqs2pg_idempotency",
                "sqs2pg_quarantined_groups",
                "sqs2pg_queue_order",
            ]
            # 0005: the records in daily partitions, today's and the next two made by the migration
            today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
            days = [f"sqs2pg_idempotency_p{today + dt.timedelta(days=n):%Y%m%d}" for n in range(3)]
            assert await conn.fetchval(PARTITIONS) == ["sqs2pg_idempotency_default", *days]
            columns = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            )
            assert {c["column_name"]: c["data_type"] for c in columns}.items() >= {
                "id": "bigint",
                "idempotency_key": "text",
                "queue_name": "text",
                "message_group_id": "text",
                "message_id": "text",
                "body": "jsonb",
                "committed_at": "timestamp with time zone",
                "envelope": "text",  # 0003
            }.items()
            # 0002: every record says how its message ended; the ones 0001 wrote were commits
            status = await conn.fetchval(
                "SELECT column_default FROM information_schema.columns"
                " WHERE table_name = 'sqs2pg_idempotency' AND column_name = 'status'"
            )
            assert status == "'committed'::text"
            await asyncio.to_thread(migrate.downgrade, settings, "base")
            assert await conn.fetchval(TABLES) == ["sqs2pg_alembic_version"]
            await asyncio.to_thread(migrate.upgrade, settings)
            assert await migrate.current_revision(conn) == migrate.head_revision(settings)
        finally:
            await conn.close()


async def test_prune_deletes_only_expired_records_in_batches_one_replica_at_a_time(database_url, db) -> None:
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, committed_at)"
        " SELECT 'old-' || i, '\\x00'::bytea, 'q', 'm', now() - interval '8 days' FROM generate_series(1, 250) i"
        " UNION ALL SELECT 'new-' || i, '\\x00', 'q', 'm', now() - interval '6 days' FROM generate_series(1, 20) i"
    )
    # groups' positions go with them: those of groups that applied nothing for as long
    await db.execute(
        "INSERT INTO sqs2pg_group_positions (queue_name, message_group_id, queue_created, sent_ms, message_id,"
        " updated_at) SELECT 'q', 'g-' || i, 1, i, 'm', now() - (i || ' days')::interval FROM generate_series(1, 9) i"
    )
    store = Store(make_settings(database_url, ["http://x/1/q.fifo"]), insert_event)
    await store.open()
    try:
        # Another replica holds the pruning lock: this one skips.
        other = await asyncpg.connect(database_url)
        await other.execute("SELECT pg_advisory_lock($1)", PRUNE_LOCK_ID)
        assert await store.prune(7 * 86400, 100) is None
        await other.close()
        assert await store.prune(7 * 86400, 100, pause_s=0) == 250
    finally:
        await store.close()
    remaining = await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE idempotency_key LIKE 'old-%'")
    assert remaining == 0
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 20
    kept = await db.fetch("SELECT message_group_id FROM sqs2pg_group_positions ORDER BY updated_at DESC")
    assert [r["message_group_id"] for r in kept] == [f"g-{i}" for i in range(1, 7)]


async def test_sqs2pg_keeps_its_own_version_table_beside_the_applications_alembic(postgres_admin_url: str) -> None:
    """An application with its own Alembic migrations in the same database uses alembic_version; sqs2pg's
    revision lives in sqs2pg_alembic_version. A database migrated by sqs2pg 0.1 (its revision in
    alembic_version, beside the application's) is adopted: ours moves, the application's stays."""
    async with scratch_database(postgres_admin_url) as url:
        settings = make_settings(url, ["http://x/1/q.fifo"])
        conn = await asyncpg.connect(url)
        try:
            # as 0.1 left it: our revision 0001 and the schema, plus the application's own revision
            await asyncio.to_thread(migrate.upgrade, settings)
            await conn.execute("ALTER TABLE sqs2pg_alembic_version RENAME TO alembic_version")
            await conn.execute(
                "ALTER TABLE alembic_version RENAME CONSTRAINT sqs2pg_alembic_version_pkc TO alembic_version_pkc"
            )
            await conn.execute("INSERT INTO alembic_version VALUES ('app_rev_1')")
            await asyncio.to_thread(migrate.upgrade, settings)
            assert await migrate.current_revision(conn) == migrate.head_revision(settings)
            assert [r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version")] == [
                "app_rev_1"
            ]
        finally:
            await conn.close()


async def test_a_database_one_migration_behind_is_not_ready_and_says_run_migrate(postgres_admin_url: str) -> None:
    """A new version started before `sqs2pg migrate` ran (a rolling deploy): it waits for the schema, as for a
    database that is down, instead of failing every message."""
    async with scratch_database(postgres_admin_url) as url:
        settings = make_settings(url, ["http://x/1/q.fifo"])
        await asyncio.to_thread(migrate.upgrade, settings, "0003")  # head is 0004
        store = Store(settings, insert_event)
        await store.open()
        try:
            problem = await store.unavailable()
            assert problem is not None and "older than this version" in problem and "sqs2pg migrate" in problem
            await asyncio.to_thread(migrate.upgrade, settings)
            assert await store.unavailable() is None
        finally:
            await store.close()
