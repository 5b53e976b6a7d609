"""Group quarantine (SQS2PG_ON_PERMANENT_ERROR=quarantine_group) with two replicas on one queue: a group whose
message was dead-lettered sends its later messages after it, in order; other groups flow; the quarantine is a
table, so it holds across replicas and restarts; `sqs2pg dlq redrive --group` brings the group back in order
and ends it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
import pytest

from ..support.helpers import Queues, make_settings, metric, running, start_service, wait_until
from ..support.servers import ROOT

pytestmark = pytest.mark.integration
# A short visibility timeout: a receive cut short when a replica stops may have been handed a message the
# server then keeps invisible for that long (a delay the test should not have to wait out).
ENV = {
    "HANDLER": "tests.handlers:gated",
    "SQS2PG_ON_PERMANENT_ERROR": "quarantine_group",
    "SQS2PG_VISIBILITY_TIMEOUT_S": "5",
}


async def test_a_quarantined_group_follows_its_dead_lettered_message_in_order_until_a_group_redrive(
    database_url, db, queues: Queues
) -> None:
    await db.execute("CREATE TABLE gate (opened boolean)")  # closed: the gated message fails (permanently)
    entries = [({"seq": s, **({"gated": True} if s == 2 else {})}, "q", f"q-{s}") for s in range(6)]
    entries += [({"seq": s}, "f", f"f-{s}") for s in range(6)]
    await queues.send_batch(entries)
    settings = make_settings(
        database_url,
        [queues.url],
        HANDLER=ENV["HANDLER"],
        on_permanent_error="quarantine_group",
        visibility_timeout_s="5",
        depth_sample_interval_s="0.2",
    )
    other = await start_service(database_url, queues.url, **ENV)  # the second replica, its own process
    try:
        async with running(settings) as app:
            await wait_until(lambda: _applied_is(db, {"q": [0, 1], "f": list(range(6))}))
            await wait_until(lambda: _dead_lettered(db, 4))
            await wait_until(lambda: _depth_is(queues, 0))
            await wait_until(lambda: _gauge(app, queues.name, 1))
        records = {
            r["idempotency_key"]: r
            for r in await db.fetch("SELECT * FROM sqs2pg_idempotency WHERE status = 'dead_lettered'")
        }
        (row,) = await db.fetch("SELECT * FROM sqs2pg_quarantined_groups")
        assert (row["queue_name"], row["message_group_id"], row["idempotency_key"]) == (queues.name, "q", "q-2")
        assert (row["error_kind"], row["message_id"]) == ("handler", records["q-2"]["message_id"])
        for k in ("q-3", "q-4", "q-5"):
            assert records[k]["error_kind"] == "group_quarantined"
            assert records["q-2"]["message_id"] in records[k]["reason"]

        # It survives a restart: a later message of the group, received by a fresh replica, follows too.
        async with running(settings) as app:
            await queues.send({"seq": 6}, "q", "q-6")
            await wait_until(lambda: _dead_lettered(db, 5), timeout_s=60)
            await wait_until(lambda: _depth_is(queues, 0))

        # A redrive before the cause is fixed, while both replicas run: each message moves once (a copy the
        # service dead-letters again during the run is left for the next), so the group is back in the DLQ in
        # its order, quarantined again, and nothing of it is applied.
        async with running(settings) as app:
            code, out = await _cli("dlq", "redrive", "--group", "q", database_url=database_url, queue=queues.url)
            assert "5 moved" in out, out
            await wait_until(lambda: _dlq_depth_is(queues, 5), timeout_s=60)
            await wait_until(lambda: _gauge(app, queues.name, 1))
        assert await _applied_is(db, {"q": [0, 1], "f": list(range(6))})

        # The cause is fixed; `sqs2pg dlq redrive --group q` brings the group back in order and ends it, while
        # both replicas run.
        await db.execute("INSERT INTO gate VALUES (true)")
        async with running(settings) as app:
            code, out = await _cli("dlq", "redrive", "--group", "q", database_url=database_url, queue=queues.url)
            assert code == 0, out
            assert "5 moved" in out and "group 'q' released" in out, out
            await wait_until(lambda: _applied_is(db, {"q": list(range(7)), "f": list(range(6))}), timeout_s=60)
            await wait_until(lambda: _gauge(app, queues.name, 0))
    finally:
        if other.returncode is None:
            other.send_signal(signal.SIGTERM)
            await asyncio.wait_for(other.communicate(), 30)
    assert other.returncode == 0
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_quarantined_groups") == 0
    assert await queues.depth(queues.dlq_url) == 0
    code, out = await _cli("quarantine", "list", database_url=database_url, queue=queues.url)
    assert code == 0 and "0 group(s) quarantined" in out, out


async def test_quarantine_release_lets_the_next_messages_through_and_leaves_the_dlq_alone(
    database_url, db, queues: Queues
) -> None:
    await db.execute("CREATE TABLE gate (opened boolean)")
    await queues.send_batch([({"seq": 0, "gated": True}, "q", "q-0"), ({"seq": 1}, "q", "q-1")])
    settings = make_settings(database_url, [queues.url], HANDLER=ENV["HANDLER"], on_permanent_error="quarantine_group")
    async with running(settings):
        await wait_until(lambda: _dead_lettered(db, 2))
        code, out = await _cli("quarantine", "list", database_url=database_url, queue=queues.url)
        assert code == 0 and "group=q state=quarantined" in out and "1 group(s) quarantined" in out, out
        code, out = await _cli("quarantine", "release", "q", database_url=database_url, queue=queues.url)
        assert code == 0 and "released" in out, out
        await queues.send({"seq": 2}, "q", "q-2")
        await wait_until(lambda: _applied_is(db, {"q": [2]}))
    assert await queues.depth(queues.dlq_url) == 2  # q-0 and q-1 wait there for a redrive or to be dropped
    code, out = await _cli("quarantine", "release", "q", database_url=database_url, queue=queues.url)
    assert code == 1 and "not quarantined" in out, out
    # --queue is checked as `dlq` and `send` check it: a queue sqs2pg does not know is a setting error (exit 2),
    # not "0 groups"; by name or URL, with SQS_QUEUE_URLS and without it (then: a queue it applied messages from)
    code, out = await _cli("quarantine", "list", "--queue", "nope.fifo", database_url=database_url, queue=queues.url)
    assert code == 2 and "--queue 'nope.fifo'" in out, out
    code, out = await _cli("quarantine", "list", "--queue", "nope.fifo", database_url=database_url, queue="")
    assert code == 2 and "applied nothing from a queue of that name" in out, out
    code, out = await _cli("quarantine", "list", "--queue", queues.name, database_url=database_url, queue="")
    assert code == 0 and "0 group(s) quarantined" in out, out


async def _cli(*args: str, database_url: str, queue: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "SQS_QUEUE_URLS": queue}
    if not queue:
        del env["SQS_QUEUE_URLS"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sqs2pg",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _applied_is(db: asyncpg.Connection, expected: dict[str, list[int]]) -> bool:
    rows = await db.fetch("SELECT message_group_id AS g, seq FROM applied ORDER BY id")
    seen: dict[str, list[int]] = {}
    for r in rows:
        seen.setdefault(r["g"], []).append(r["seq"])
    return seen == expected


async def _dead_lettered(db: asyncpg.Connection, n: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE status = 'dead_lettered'") >= n


async def _depth_is(queues: Queues, n: int) -> bool:
    return await queues.depth() == n


async def _dlq_depth_is(queues: Queues, n: int) -> bool:
    return await queues.depth(queues.dlq_url) == n


async def _gauge(app, queue: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, "sqs2pg_quarantined_groups", queue=queue) == n
