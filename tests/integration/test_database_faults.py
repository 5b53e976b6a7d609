"""PostgreSQL restarted and failed over under load, on private servers made for the test.

The service follows the writer through a multi-host DATABASE_URL; the circuit breaker keeps it from spending
receives while no writer answers. Applies go to table ``applied`` (no unique key), so duplicates would show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sqs2pg.db import migrate

from ..support.helpers import (
    Queues,
    assert_no_loss_no_duplicates_in_order,
    create_test_tables,
    exactly_once_report,
    fault_workload,
    make_settings,
    metric,
    running,
    wait_until,
)
from ..support.pgcluster import Cluster, Clusters, bindir, wait_accepting

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bindir() is None, reason="needs PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)"),
]
HANDLER = "tests.handlers:record_apply"


@pytest.fixture
async def clusters() -> AsyncIterator[Clusters]:
    c = Clusters()
    try:
        yield c
    finally:
        await asyncio.to_thread(c.close)


async def _prepare(primary: Cluster, database_url: str) -> None:
    admin = await asyncpg.connect(primary.url())
    await admin.execute("CREATE DATABASE sqs2pg")
    await admin.close()
    await asyncio.to_thread(migrate.upgrade, make_settings(database_url, ["http://x/1/q.fifo"]))
    await create_test_tables(primary.url("sqs2pg"))


async def _applied_at_least(url: str, n: int) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        return int(await conn.fetchval("SELECT count(DISTINCT idempotency_key) FROM applied")) >= n
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


def _settings(database_url: str, queue_url: str):  # type: ignore[no-untyped-def]
    return make_settings(
        database_url,
        [queue_url],
        HANDLER=HANDLER,
        retry_base_s="1",
        db_connect_timeout_s="2",
        db_statement_timeout_s="5",
    )


async def test_postgres_restarted_fast_and_immediate_under_load(clusters: Clusters, queues: Queues) -> None:
    pg = clusters.new("restart")
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    url = pg.url("sqs2pg")
    await _prepare(pg, url)
    sent = fault_workload(groups=6, per_group=25, sleep_s=0.02)
    await queues.send_batch(sent)
    settings = _settings(url, queues.url)
    q = queues.name
    recoveries: list[float] = []
    async with running(settings) as app:
        for i, mode in enumerate(["fast", "immediate", "fast", "immediate"]):
            await wait_until(lambda i=i: _applied_at_least(url, (i + 1) * len(sent) // 6), timeout_s=60)
            await asyncio.to_thread(pg.stop, mode)
            await asyncio.sleep(1)
            await asyncio.to_thread(pg.start)
            back = time.monotonic()
            before = metric(app, "sqs2pg_messages_total", queue=q, outcome="committed")
            await wait_until(lambda before=before: _more(app, q, before), timeout_s=60, interval_s=0.05)
            recoveries.append(time.monotonic() - back)
        await wait_until(lambda: _applied_at_least(url, len(sent)), timeout_s=90)
        dead = metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered")
    db = await asyncpg.connect(url)
    try:
        report = await exactly_once_report(
            db,
            sent,
            "PostgreSQL restarted x4 (fast, immediate)",
            dead_lettered=int(dead),
            recover_s_max=round(max(recoveries), 2),
        )
    finally:
        await db.close()
    assert_no_loss_no_duplicates_in_order(report)
    assert dead == 0 and await queues.depth(queues.dlq_url) == 0


async def test_failover_to_promoted_synchronous_replica_under_load(clusters: Clusters, queues: Queues) -> None:
    primary, replica = clusters.new("primary"), clusters.new("replica")
    await asyncio.to_thread(primary.init)
    await asyncio.to_thread(primary.start)
    await asyncio.to_thread(replica.replica_of, primary)
    await asyncio.to_thread(replica.start)
    # The service is told about both servers and must find the writer itself.
    multi = f"postgresql://postgres@{primary.host},{replica.host}/sqs2pg"
    await _prepare(primary, primary.url("sqs2pg"))
    sent = fault_workload(groups=6, per_group=25, sleep_s=0.02)
    await queues.send_batch(sent)
    q = queues.name
    async with running(_settings(multi, queues.url)) as app:
        await wait_until(lambda: _applied_at_least(primary.url("sqs2pg"), len(sent) // 3), timeout_s=60)
        # The writer dies; a few seconds later the synchronous replica is promoted (what Aurora does, faster).
        await asyncio.to_thread(primary.stop, "immediate")
        await asyncio.sleep(3)
        await asyncio.to_thread(replica.promote)
        await asyncio.to_thread(wait_accepting, replica)
        promoted = time.monotonic()
        before = metric(app, "sqs2pg_messages_total", queue=q, outcome="committed")
        await wait_until(lambda: _more(app, q, before), timeout_s=60, interval_s=0.05)
        recover_s = time.monotonic() - promoted
        await wait_until(lambda: _applied_at_least(replica.url("sqs2pg"), len(sent)), timeout_s=90)
        dead = metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered")
    db = await asyncpg.connect(replica.url("sqs2pg"))
    try:
        report = await exactly_once_report(
            db,
            sent,
            "failover: primary killed, sync replica promoted",
            dead_lettered=int(dead),
            recover_s_max=round(recover_s, 2),
        )
    finally:
        await db.close()
    assert_no_loss_no_duplicates_in_order(report)
    assert dead == 0 and await queues.depth(queues.dlq_url) == 0


async def _more(app, q: str, before: float) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, "sqs2pg_messages_total", queue=q, outcome="committed") > before
