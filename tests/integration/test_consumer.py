"""The consumer against real PostgreSQL and a real SQS-compatible server over HTTP."""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg
import pytest

from sqs2pg.db.store import Store
from sqs2pg.errors import Outcome
from sqs2pg.handler import insert_event
from sqs2pg.message import Message

from ..support.helpers import Queues, group_sequences, make_settings, metric, running, scrape_metrics, wait_until

pytestmark = pytest.mark.integration


async def _count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def test_same_key_twice_is_applied_once_and_other_body_is_dead_lettered(database_url, db, queues: Queues) -> None:
    key = {"idempotency_key": {"DataType": "String", "StringValue": "order-42"}}
    await queues.send({"seq": 0, "amount": 10}, "g", "first", key)
    await queues.send({"seq": 0, "amount": 10}, "g", "second", key)  # a producer retry: same key, same body
    await queues.send({"seq": 0, "amount": 99}, "g", "third", key)  # a bug: same key, another body
    await queues.send({"seq": 1}, "g", "fourth")
    settings = make_settings(database_url, [queues.url])
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 4))
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="committed") == 2
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="duplicate") == 1
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="dead_lettered") == 1
    rows = await db.fetch("SELECT idempotency_key, body FROM events ORDER BY id")
    assert [(r["idempotency_key"], json.loads(r["body"])) for r in rows] == [
        ("order-42", {"seq": 0, "amount": 10}),
        ("fourth", {"seq": 1}),
    ]
    dead = await queues.receive_all(queues.dlq_url)
    assert len(dead) == 1
    assert json.loads(dead[0]["Body"]) == {"seq": 0, "amount": 99}
    assert dead[0]["MessageAttributes"]["sqs2pg_error_kind"]["StringValue"] == "key_reused"
    assert dead[0]["MessageAttributes"]["idempotency_key"]["StringValue"] == "order-42"
    assert await queues.depth() == 0


async def test_commit_whose_delete_was_lost_is_recognised_as_duplicate(
    database_url, db, queues: Queues, sqs_client
) -> None:
    """The process died after COMMIT and before DeleteMessage: the redelivery must not apply it twice."""
    await queues.send({"seq": 0}, "g", "m0")
    await queues.send({"seq": 1}, "g", "m1")
    settings = make_settings(database_url, [queues.url])
    # First life: receive m0 and commit it exactly as the service does, then "crash" before deleting it.
    raw = (
        await sqs_client.receive_message(
            QueueUrl=queues.url,
            MaxNumberOfMessages=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
    )["Messages"][0]
    store = Store(settings, insert_event)
    await store.open()
    try:
        assert await store.apply(Message.from_sqs(queues.url, raw, 30)) is Outcome.COMMITTED
    finally:
        await store.close()
    # The crashed process's hold ends (here at once instead of after the visibility timeout).
    await sqs_client.change_message_visibility(
        QueueUrl=queues.url, ReceiptHandle=raw["ReceiptHandle"], VisibilityTimeout=0
    )
    # Second life: the real service.
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 2))
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="duplicate") == 1
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="committed") == 1
    assert await group_sequences(db) == {"g": [0, 1]}
    assert await queues.depth() == 0


async def test_many_groups_in_flight_keep_their_order(database_url, db, queues: Queues) -> None:
    groups, per_group = 30, 10
    settings = make_settings(database_url, [queues.url], max_concurrent_groups="8", pollers_per_queue="2")
    async with running(settings) as app:
        # Interleave the groups in every batch, and send while the service consumes.
        entries = [({"seq": s}, f"g{g}", f"g{g}-{s}") for s in range(per_group) for g in range(groups)]
        await queues.send_batch(entries)
        await wait_until(lambda: _count_is(db, groups * per_group), timeout_s=60)
        await wait_until(lambda: _settled(app, queues, groups * per_group))
    by_group = await group_sequences(db)
    assert len(by_group) == groups
    assert all(seqs == list(range(per_group)) for seqs in by_group.values()), by_group
    assert await db.fetchval("SELECT count(DISTINCT idempotency_key) FROM events") == groups * per_group
    assert await queues.depth() == 0


async def test_transient_database_failure_retries_in_place_and_keeps_order(database_url, db, queues: Queues) -> None:
    # seq 2 of group "a" loses its connection on its first delivery; group "b" must flow meanwhile.
    entries = [({"seq": s, **({"fail_once": True} if s == 2 else {})}, "a", f"a-{s}") for s in range(6)]
    entries += [({"seq": s}, "b", f"b-{s}") for s in range(6)]
    await queues.send_batch(entries)
    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:drop_connection_on_first_try")
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 12, extra_outcomes=("retried", "released")))
        q = _name(queues)
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="retried") == 1
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="dead_lettered") == 0
        assert (
            metric(app, "sqs2pg_db_errors_total", queue=q, kind="failover")
            + metric(app, "sqs2pg_db_errors_total", queue=q, kind="connection")
            == 1
        )
        # tried again in place: nothing went back to SQS, nothing was received twice
        assert metric(app, "sqs2pg_received_messages_total", queue=q) == 12
    assert await group_sequences(db) == {"a": list(range(6)), "b": list(range(6))}
    # The retry waited out its backoff (retry_base_s=1: 0.5 to 1 s), it was not tried again at once.
    gap = await db.fetchval(
        "SELECT extract(epoch FROM max(committed_at) FILTER (WHERE body->>'seq' = '2')"
        " - max(committed_at) FILTER (WHERE body->>'seq' = '1')) FROM events WHERE message_group_id = 'a'"
    )
    assert gap >= 0.45
    assert await queues.depth(queues.dlq_url) == 0


async def test_poison_message_is_dead_lettered_with_reason_and_its_group_goes_on(
    database_url, db, queues: Queues
) -> None:
    await queues.send({"seq": 0}, "p", "p-0")
    await queues.send("this is not JSON", "p", "p-1")
    await queues.send("[1, 2, 3]", "p", "p-2")
    await queues.send({"seq": 3}, "p", "p-3")
    await queues.send_batch([({"seq": s}, f"ok{g}", f"ok{g}-{s}") for s in range(5) for g in range(4)])
    settings = make_settings(database_url, [queues.url], depth_sample_interval_s="0.2")
    q = _name(queues)
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 24))

        async def depths_sampled() -> bool:  # what the "DLQ not empty" alert reads
            return (
                metric(app, "sqs2pg_dead_letter_messages", queue=q) == 2
                and metric(app, "sqs2pg_queue_messages", queue=q, state="visible") == 0
            )

        await wait_until(depths_sampled, timeout_s=10)
        body = await scrape_metrics(app)
    # /metrics, as Prometheus scrapes it, reports the outcomes.
    assert f'sqs2pg_messages_total{{outcome="committed",queue="{q}"}} 22.0' in body
    assert f'sqs2pg_messages_total{{outcome="dead_lettered",queue="{q}"}} 2.0' in body
    assert f'sqs2pg_handle_duration_seconds_count{{queue="{q}"}} 22.0' in body
    assert f'sqs2pg_dead_letter_messages{{queue="{q}"}} 2.0' in body
    by_group = await group_sequences(db)
    assert by_group.pop("p") == [0, 3]
    assert by_group == {f"ok{g}": list(range(5)) for g in range(4)}
    dead = await queues.receive_all(queues.dlq_url)
    assert [m["Body"] for m in dead] == ["this is not JSON", "[1, 2, 3]"]  # in order, in their group
    for m in dead:
        attrs = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
        assert attrs["sqs2pg_error_kind"] == "invalid_message"
        assert attrs["sqs2pg_source_queue"] == q
        assert attrs["sqs2pg_receive_count"] == "1"
        assert m["Attributes"]["MessageGroupId"] == "p"
    assert {m["MessageAttributes"]["sqs2pg_error"]["StringValue"] for m in dead} == {
        "body is not valid JSON",
        "body must be a JSON object",
    }
    assert await queues.depth() == 0


async def test_heartbeat_keeps_a_slow_message_invisible(database_url, db, queues: Queues) -> None:
    """Handling takes longer than the visibility timeout: the heartbeat must stop a second delivery."""
    await queues.send({"seq": 0, "sleep_s": 7}, "slow", "s-0")
    settings = make_settings(
        database_url, [queues.url], HANDLER="tests.handlers:slow", visibility_timeout_s="5", db_statement_timeout_s="30"
    )
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 1), timeout_s=20)
        await asyncio.sleep(1)
        q = _name(queues)
        assert metric(app, "sqs2pg_received_messages_total", queue=q) == 1
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="duplicate") == 0
    assert await _count(db) == 1


async def test_handler_that_swallows_a_database_error_is_not_reported_committed(
    database_url, db, queues: Queues
) -> None:
    """PostgreSQL answers COMMIT with ROLLBACK after a swallowed error: the message must not be deleted as done."""
    await queues.send({"seq": 0}, "g", "g-0")
    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:swallow_database_error")
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 1))
        assert metric(app, "sqs2pg_messages_total", queue=_name(queues), outcome="committed") == 0
    assert await _count(db) == 0
    dead = await queues.receive_all(queues.dlq_url)
    assert [m["MessageAttributes"]["sqs2pg_error_kind"]["StringValue"] for m in dead] == ["handler"]


def _name(queues: Queues) -> str:
    return queues.name


async def _count_is(db: asyncpg.Connection, n: int) -> bool:
    return await _count(db) >= n


async def _settled(app, queues: Queues, n: int, extra_outcomes: tuple[str, ...] = ()) -> bool:
    """n messages reached a final outcome and the queue is empty (every delete flushed)."""
    q = _name(queues)
    final = sum(
        metric(app, "sqs2pg_messages_total", queue=q, outcome=o) for o in ("committed", "duplicate", "dead_lettered")
    )
    return final >= n and await queues.depth() == 0


async def test_a_handler_that_hangs_is_cut_at_the_transaction_timeout_and_retried(
    database_url, db, queues: Queues
) -> None:
    """A handler that waits forever on its first delivery holds its worker for SQS2PG_TRANSACTION_TIMEOUT_S at
    most: the transaction is rolled back, the message retried later (in order in its group), and it counts
    neither as a database error nor toward the circuit breaker. With a single worker, the other group only
    flows if the hung transaction was given up."""
    entries = [({"seq": s, **({"hang": True} if s == 0 else {})}, "h", f"h-{s}") for s in range(3)]
    entries += [({"seq": s}, "o", f"o-{s}") for s in range(3)]
    await queues.send_batch(entries)
    settings = make_settings(
        database_url,
        [queues.url],
        HANDLER="tests.handlers:hang_once",
        transaction_timeout_s="1",
        max_concurrent_groups="1",
        transaction_max_messages="1",
    )
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, 6, extra_outcomes=("retried", "released")))
        q = _name(queues)
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="retried") == 1
        assert metric(app, "sqs2pg_circuit_open") == 0
        assert metric(app, "sqs2pg_db_errors_total", queue=q, kind="timeout") == 0
    assert await group_sequences(db) == {"h": [0, 1, 2], "o": [0, 1, 2]}


async def test_one_hot_group_goes_in_runs_in_order_exactly_once_through_a_transient_failure(
    database_url, db, queues: Queues
) -> None:
    """200 messages of one group, seq 50 losing its connection on its first try. Every message is applied once, in
    order, the failed one tried again in place (the ones of its run behind it wait, and are not counted as failed).
    On a server that hands out several messages of a group per receive (SQS, the project's moto launcher) a run
    of them shares a transaction: far fewer transactions than messages."""
    per_group = 200
    entries = [({"seq": s, **({"fail_once": True} if s == 50 else {})}, "hot", f"hot-{s}") for s in range(per_group)]
    await queues.send_batch(entries)
    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:drop_connection_on_first_try")
    async with running(settings) as app:
        await wait_until(lambda: _settled(app, queues, per_group, extra_outcomes=("retried",)), timeout_s=60)
        q = _name(queues)
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="retried") == 1
        assert metric(app, "sqs2pg_messages_total", queue=q, outcome="committed") == per_group
        assert metric(app, "sqs2pg_received_messages_total", queue=q) == per_group  # nothing received twice
    assert await group_sequences(db) == {"hot": list(range(per_group))}
    transactions = await db.fetchval("SELECT count(DISTINCT xmin::text) FROM events")
    if os.environ.get("TEST_SQS_SERVER_NAME") == "moto":  # the launcher: up to 10 of a group per receive
        assert transactions <= per_group // 3, transactions
