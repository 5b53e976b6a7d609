"""Dead-letter tooling against a real SQS-compatible server: peek, dry run, redrive, a redrive cut short."""

from __future__ import annotations

import json
import re

import pytest

from sqs2pg.observe.metrics import Metrics
from sqs2pg.sqs import deadletter, dlq
from sqs2pg.sqs.client import Sqs

from ..support.helpers import Queues, make_settings, metric, running, wait_until
from ..support.sqs_fault_proxy import FaultPlan, start_proxy

pytestmark = pytest.mark.integration


async def test_peek_dry_run_and_redrive_keep_group_key_and_lose_nothing(database_url, db, queues: Queues) -> None:
    await queues.send({"seq": 0}, "p", "p-0")
    await queues.send("bad one", "p", "p-1")
    await queues.send("[2]", "p", "p-2")
    await queues.send({"seq": 3}, "p", "p-3")
    await queues.send("bad too", "q", "q-0")
    settings = make_settings(database_url, [queues.url])
    q = queues.name
    async with running(settings) as app:
        await wait_until(lambda: _dead(app, q, 3))
        # and the good ones committed and deleted, before the service stops (it would hand them back)
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
    await wait_until(lambda: _depth_is(queues, queues.dlq_url, 3))

    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        info = await sqs.describe(queues.url)
        # Peek never takes more than asked and leaves everything in place, visible.
        seen = await dlq.peek(sqs, info, limit=2)
        assert len(seen.messages) == 2
        assert set(seen.by_reason()) == {"invalid_message"}
        assert (await sqs.counts(queues.dlq_url))["in_flight"] == 0
        assert await queues.depth(queues.dlq_url) == 3
        # A dry run moves nothing. It sees what the queue hands out without deletes: at least each group's head.
        dry = await dlq.redrive(sqs, info, limit=100, dry_run=True, report=lambda _: None)
        assert 2 <= dry.would_move <= 3 and dry.moved == 0
        assert await queues.depth(queues.dlq_url) == 3
        assert await queues.depth() == 0

        # A redrive killed between its send and its delete: the first message is in both queues.
        first = (await dlq.peek(sqs, info, limit=1)).messages[0]
        await sqs.send(info.url, first, deadletter.for_source(first), dedup_id=first.message_id)
        # The rerun moves all three, in group order, and the copy sent twice is not applied twice.
        lines: list[str] = []
        result = await dlq.redrive(sqs, info, limit=100, dry_run=False, report=lines.append)
        assert (result.moved, result.failed) == (3, [])
    finally:
        await sqs.close()
    assert await queues.depth(queues.dlq_url) == 0
    # Each line names the message by the id it had on the source queue (as peek, the records and `sqs2pg status`
    # do) and by its DLQ copy's id, each under its own name.
    named = dict(re.findall(r" id=(\S+) dlq_id=(\S+)", "\n".join(line for line in lines if line.startswith("moved"))))
    recorded = {
        r["message_id"]
        for r in await db.fetch("SELECT message_id FROM sqs2pg_idempotency WHERE status = 'dead_lettered'")
    }
    assert set(named) == recorded and len(recorded) == 3
    assert not set(named.values()) & recorded

    # The handler was fixed; the redriven messages are applied under their original idempotency keys.
    fixed = make_settings(database_url, [queues.url], HANDLER="tests.handlers:accept_anything")
    async with running(fixed) as app:
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") == 0
    rows = await db.fetch("SELECT message_group_id AS g, idempotency_key AS k FROM events ORDER BY id")
    by_group: dict[str, list[str]] = {}
    for r in rows:
        by_group.setdefault(r["g"], []).append(r["k"])
    # Redriven messages join the back of their group, in their original order; each key exactly once.
    assert by_group == {"p": ["p-0", "p-3", "p-1", "p-2"], "q": ["q-0"]}


async def _dead(app, q: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") >= n


async def _depth_is(queues: Queues, url: str, n: int) -> bool:
    return await queues.depth(url) == n


async def test_a_dead_lettered_message_whose_delete_was_lost_is_never_applied_and_a_redrive_applies_it(
    database_url, db, queues: Queues, sqs_endpoint, monkeypatch
) -> None:
    """The dead-letter gap: the copy to the DLQ succeeds, the delete from the source queue does not. The message
    comes back after its visibility timeout; by then the state its failure depended on has changed, and the
    rest of its group is waiting behind it. It must be finished (deleted), not applied. A redrive of the DLQ
    copy must then apply it, once, behind the rest of its group."""
    await db.execute("CREATE TABLE gate (opened boolean)")
    plan = FaultPlan(delay=0, error_500=0, throttle=0, drop=0, lose_response=0)
    plan.refuse = {"DeleteMessageBatch", "DeleteMessage"}  # only the service's deletes go through the proxy
    runner, proxy_url = await start_proxy(sqs_endpoint, plan)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy_url)
    settings = make_settings(
        database_url, [queues.url], HANDLER="tests.handlers:gated", visibility_timeout_s="5", receive_wait_s="1"
    )
    q = queues.name
    try:
        async with running(settings) as app:
            await queues.send({"seq": 0, "gated": True}, "g", "g-0")
            # Recorded as dead-lettered with its reason, copied to the DLQ, and its delete refused.
            await wait_until(lambda: _dead(app, q, 1))
            await wait_until(lambda: _delete_failed(app, q))  # after the client's own retries
            record = await db.fetchrow("SELECT * FROM sqs2pg_idempotency WHERE idempotency_key = 'g-0'")
            assert (record["status"], record["error_kind"], record["dead_letter_copied"]) == (
                "dead_lettered",
                "handler",
                True,
            ), dict(record)
            assert "the gate is closed" in record["reason"]
            # The state changes (the same message would now succeed), the group's next messages are waiting,
            # and deletes work again.
            await db.execute("INSERT INTO gate VALUES (true)")
            await queues.send({"seq": 1}, "g", "g-1")
            await queues.send({"seq": 2}, "g", "g-2")
            plan.refuse.clear()
            await wait_until(lambda: _depth_is(queues, queues.url, 0), timeout_s=60)
            # The redelivered copy was recognised and deleted, never applied.
            assert metric(app, "sqs2pg_messages_total", queue=q, outcome="duplicate") >= 1
            assert metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") == 1
    finally:
        await runner.cleanup()
    assert await _applied(db) == [("g-1", 1), ("g-2", 2)]
    assert await queues.depth(queues.dlq_url) == 1

    # The operator redrives it: the copy is applied once, behind the rest of its group, and its record is
    # the commit's now.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_endpoint)
    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        result = await dlq.redrive(sqs, await sqs.describe(queues.url), limit=10, dry_run=False, report=lambda _: None)
        assert (result.moved, result.failed) == (1, [])
    finally:
        await sqs.close()
    async with running(settings) as app:
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
        await wait_until(lambda: _committed(app, q, 1))
    assert await _applied(db) == [("g-1", 1), ("g-2", 2), ("g-0", 0)]
    record = await db.fetchrow("SELECT * FROM sqs2pg_idempotency WHERE idempotency_key = 'g-0'")
    assert (record["status"], record["error_kind"], record["reason"]) == ("committed", None, None)
    assert await queues.depth(queues.dlq_url) == 0


async def _applied(db) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [
        (r["idempotency_key"], r["seq"]) for r in await db.fetch("SELECT idempotency_key, seq FROM applied ORDER BY id")
    ]


async def _delete_failed(app, q: str) -> bool:  # type: ignore[no-untyped-def]
    return any(
        s.value >= 1 and s.labels["operation"] == "delete_message_batch" and s.labels["queue"] == q
        for family in app.metrics.registry.collect()
        if family.name == "sqs2pg_sqs_errors"
        for s in family.samples
        if s.name == "sqs2pg_sqs_errors_total"
    )


async def _committed(app, q: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return metric(app, "sqs2pg_messages_total", queue=q, outcome="committed") >= n


MAX_BODY = 1_048_576  # SQS's largest message: 1 MiB, body and attributes together


async def test_bodies_of_1_mib_are_committed_whole_and_a_poison_one_reaches_the_dlq_whole(
    database_url, db, queues: Queues
) -> None:
    """A body at SQS's limit is committed unchanged. A poison one at the limit leaves no room for sqs2pg's
    reason attributes on its DLQ copy (SQS counts attributes toward the limit; fauxqs does too, moto does
    not): the body still gets there whole, and the reason is in the database's dead-letter record."""
    good = json.dumps({"seq": 0, "pad": ""})
    good = good.replace('"pad": ""', '"pad": "' + "x" * (MAX_BODY - len(good)) + '"')
    poison = "[" + "1," * ((MAX_BODY - 3) // 2) + "1]"
    poison += " " * (MAX_BODY - len(poison))  # valid JSON, not an object: invalid_message
    assert len(good) == len(poison) == MAX_BODY
    await queues.send(good, "big", "big-0")
    await queues.send(poison, "big", "big-1")
    await queues.send({"seq": 2}, "big", "big-2")
    q = queues.name
    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _depth_is(queues, queues.url, 0), timeout_s=60)
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") == 1
    rows = await db.fetch("SELECT idempotency_key, length(body::text) AS n FROM events ORDER BY id")
    assert [r["idempotency_key"] for r in rows] == ["big-0", "big-2"]
    stored = await db.fetchval("SELECT body FROM events WHERE idempotency_key = 'big-0'")
    assert json.loads(stored) == json.loads(good), "the 1 MiB body was not stored unchanged"
    (copy,) = await queues.receive_all(queues.dlq_url)
    assert copy["Body"] == poison and copy["Attributes"]["MessageGroupId"] == "big"
    record = await db.fetchrow("SELECT status, error_kind FROM sqs2pg_idempotency WHERE idempotency_key = 'big-1'")
    assert (record["status"], record["error_kind"]) == ("dead_lettered", "invalid_message")
