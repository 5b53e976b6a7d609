"""`sqs2pg drill` as a user runs it on a deployed stack, here against a real SQS server and a private PostgreSQL
primary whose synchronous replica is promoted mid-drill (what an FIS failover does to Aurora, faster)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sqs2pg.db import migrate

from ..support.helpers import Queues, make_settings, run_cli, running, wait_until
from ..support.pgcluster import Clusters, bindir, wait_accepting

# Nothing here depends on how the SQS server behaves: one server is enough.
pytestmark = [pytest.mark.integration, pytest.mark.one_sqs]


@pytest.fixture
async def clusters() -> AsyncIterator[Clusters]:
    c = Clusters()
    try:
        yield c
    finally:
        await asyncio.to_thread(c.close)


async def _drilled_at_least(url: str, n: int) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        return int(await conn.fetchval("SELECT count(*) FROM sqs2pg_drill")) >= n
    finally:
        await conn.close()


@pytest.mark.skipif(bindir() is None, reason="needs PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)")
async def test_a_drill_through_a_failover_reports_nothing_lost_and_never_reaches_the_handler(
    clusters: Clusters, queues: Queues
) -> None:
    primary, replica = clusters.new("primary"), clusters.new("replica")
    await asyncio.to_thread(primary.init)
    await asyncio.to_thread(primary.start)
    await asyncio.to_thread(replica.replica_of, primary)
    await asyncio.to_thread(replica.start)
    admin = await asyncpg.connect(primary.url())
    await admin.execute("CREATE DATABASE sqs2pg")
    await admin.close()
    multi = f"postgresql://postgres@{primary.host},{replica.host}/sqs2pg"
    settings = make_settings(multi, [queues.url], retry_base_s="1", db_connect_timeout_s="2")
    await asyncio.to_thread(migrate.upgrade, settings)

    async with running(settings):
        env = {"DATABASE_URL": multi, "SQS_QUEUE_URLS": queues.url}
        drilling = asyncio.create_task(
            run_cli("drill", "--messages", "300", "--groups", "6", "--rate", "60", "--wait-s", "120", env=env)
        )
        await wait_until(lambda: _drilled_at_least(primary.url("sqs2pg"), 60), timeout_s=60)
        # The writer dies mid-drill; a few seconds later its synchronous replica is promoted.
        await asyncio.to_thread(primary.stop, "immediate")
        await asyncio.sleep(2)  # the failover's own length, not a wait for anything
        await asyncio.to_thread(replica.promote)
        await asyncio.to_thread(wait_accepting, replica)
        ran = await asyncio.wait_for(drilling, 200)
    print(ran.stdout)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    assert "PASSED" in ran.stdout and "lost 0, applied twice 0, out of order 0" in ran.stdout, ran.stdout
    assert "sent 300 (0 failed to send), applied 300" in ran.stdout
    pause = float(re.search(r"time to recover\) ([\d.]+) s", ran.stdout).group(1))  # type: ignore[union-attr]
    assert pause >= 2, ran.stdout  # the failover shows in the report
    db = await asyncpg.connect(replica.url("sqs2pg"))
    try:
        assert await db.fetchval("SELECT count(*) FROM events") == 0  # never through the handler
    finally:
        await db.close()
