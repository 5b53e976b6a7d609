"""A database outage under load: receiving pauses, nothing is dead-lettered, receives are not burned."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from ..support.helpers import (
    Queues,
    assert_no_loss_no_duplicates_in_order,
    exactly_once_report,
    fault_workload,
    make_settings,
    metric,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration
OUTAGE_S = 6


async def test_database_outage_pauses_instead_of_dead_lettering(
    postgres_admin_url, database_url, queues: Queues
) -> None:
    groups, per_group = 5, 8
    sent = fault_workload(groups, per_group, sleep_s=0.1)
    await queues.send_batch(sent)
    dbname = urlsplit(database_url).path.lstrip("/")
    # The threshold is above the number of groups, so the transactions cut mid-way cannot open the breaker
    # by themselves: refused connections must count too.
    settings = make_settings(
        database_url,
        [queues.url],
        HANDLER="tests.handlers:record_apply",
        retry_base_s="1",
        db_connect_timeout_s="1",
        breaker_threshold=str(groups + 1),
    )
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        async with running(settings) as app:
            q = queues.name
            await wait_until(lambda: _committed_at_least(app, q, 3))
            # The outage: the server refuses new connections to the database and drops the existing ones,
            # as a failing-over writer does.
            await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                dbname,
            )
            await wait_until(lambda: _gauge_is(app, "sqs2pg_circuit_open", 1), timeout_s=10)
            # A long poll already under way when it opened may still bring one batch; after that, nothing.
            await asyncio.sleep(settings.receive_wait_s + 0.5)
            received_during = metric(app, "sqs2pg_received_messages_total", queue=q)
            await asyncio.sleep(OUTAGE_S)
            # Paused: nothing more was received while the database was away.
            assert metric(app, "sqs2pg_received_messages_total", queue=q) == received_during
            await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
            back = time.monotonic()
            before = metric(app, "sqs2pg_messages_total", queue=q, outcome="committed")
            await wait_until(lambda: _committed_at_least(app, q, before + 1), timeout_s=60, interval_s=0.05)
            recover_s = time.monotonic() - back
            await wait_until(lambda: _committed_at_least(app, q, groups * per_group), timeout_s=60)
            assert metric(app, "sqs2pg_circuit_open") == 0
            assert metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") == 0
            # Only failures before the breaker opened were retried, in place; once open, a message in hand is held
            # and tried again in place too. Nothing went back to SQS: nothing was received twice.
            retried = metric(app, "sqs2pg_messages_total", queue=q, outcome="retried")
            assert retried <= settings.breaker_threshold
            assert metric(app, "sqs2pg_received_messages_total", queue=q) == groups * per_group
    finally:
        await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await admin.close()
    db = await asyncpg.connect(database_url)
    try:
        report = await exactly_once_report(
            db,
            sent,
            f"database refusing connections {OUTAGE_S} s (breaker)",
            dead_lettered=0,
            recover_s_max=round(recover_s, 2),
            retried=int(retried),
        )
    finally:
        await db.close()
    assert_no_loss_no_duplicates_in_order(report)
    assert await queues.depth(queues.dlq_url) == 0


async def _committed_at_least(app, q: str, n: float) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, "sqs2pg_messages_total", queue=q, outcome="committed") >= n


async def _gauge_is(app, name: str, value: float) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, name) == value
