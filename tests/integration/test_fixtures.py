"""The test kit's own promise: a test's scratch database is dropped afterwards, also when the PostgreSQL server
restarted during the test (the fault tests restart theirs), so a run leaves no sqs2pg_t_* database behind."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ..support.helpers import scratch_database
from ..support.pgcluster import Clusters, bindir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bindir() is None, reason="needs PostgreSQL server binaries (initdb, pg_ctl)"),
]


async def _scratch_databases(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'sqs2pg_t_%'")
        return [r["datname"] for r in rows]
    finally:
        await conn.close()


async def test_a_scratch_database_is_dropped_even_when_the_server_restarted_during_the_test() -> None:
    clusters = Clusters()
    try:
        pg = clusters.new("fixture")
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        async with scratch_database(pg.url()) as url:
            assert len(await _scratch_databases(pg.url())) == 1
            conn = await asyncpg.connect(url)
            await asyncio.to_thread(pg.stop, "immediate")  # every connection the kit might have held is gone
            await asyncio.to_thread(pg.start)
            assert conn.is_closed() or not await _alive(conn)
        assert await _scratch_databases(pg.url()) == []
    finally:
        await asyncio.to_thread(clusters.close)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
        return True
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
        return False
