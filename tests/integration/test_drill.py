"""`sqs2pg drill` as a user runs it on a deployed stack, here against a real SQS server and a private PostgreSQL
primary whose synchronous replica is promoted mid-drill (what an FIS failover does to Aurora, faster)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from sqs2pg.cli.drill import print_report
from sqs2pg.db import drill, migrate

from ..support.helpers import Queues, make_settings, run_cli, running, wait_until
from ..support.pgcluster import Clusters, bindir, wait_accepting

pytestmark = pytest.mark.integration


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


async def test_the_drill_report_counts_what_was_lost_duplicated_and_reordered(db: Any, capsys: Any) -> None:
    run = "run-1"
    # group a: 0, 2, 1 (1 applied after 2); group b: 0, 0 (applied twice), 1 never applied; 6 were sent
    for group, seq in [("a", 0), ("a", 2), ("a", 1), ("b", 0), ("b", 0)]:
        await db.execute(
            "INSERT INTO sqs2pg_drill (run_id, message_group_id, seq, message_id, sent_at)"
            " VALUES ($1, $2, $3, 'm', now())",
            run,
            group,
            seq,
        )
    await db.execute(
        "INSERT INTO sqs2pg_drill (run_id, message_group_id, seq, message_id) VALUES ('other', 'a', 9, 'm')"
    )
    report = await drill.report(db, run, sent=6, failed=0)
    assert (report["applied"], report["lost"], report["duplicated"], report["reordered"]) == (4, 2, 1, 1)
    assert print_report(report, wait_s=30) is False
    assert "2 not applied within 30 s of the last send" in capsys.readouterr().out
