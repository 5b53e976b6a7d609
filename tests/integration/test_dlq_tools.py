"""Dead-letter tooling against a real SQS-compatible server: peek, dry run, redrive, a redrive cut short."""

from __future__ import annotations

import pytest

from sqs2pg import dlq
from sqs2pg.metrics import Metrics
from sqs2pg.sqs import Sqs

from ..support.helpers import Queues, make_settings, metric, running, wait_until

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
        await sqs.send(info.url, first, dlq._attributes_for_source(first), dedup_id=first.message_id)
        # The rerun moves all three, in group order, and the copy sent twice is not applied twice.
        result = await dlq.redrive(sqs, info, limit=100, dry_run=False, report=lambda _: None)
        assert (result.moved, result.failed) == (3, [])
    finally:
        await sqs.close()
    assert await queues.depth(queues.dlq_url) == 0

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
