"""Several messages in one transaction (the fast path), against real PostgreSQL: each still gets its own
outcome, exactly as if it had been applied alone."""

from __future__ import annotations

import json

import asyncpg
import pytest

from sqs2pg.db import records as writes
from sqs2pg.errors import Behind, InvalidMessage, Outcome, OutOfOrder
from sqs2pg.handler import insert_event
from sqs2pg.message import Message

from ..handlers import swallow_database_error
from ..support.helpers import STORE_QUEUE as URL
from ..support.helpers import open_store, queued
from ..support.roundtrips import counting

pytestmark = pytest.mark.integration


async def test_messages_that_all_go_through_share_one_transaction(database_url: str, db: asyncpg.Connection) -> None:
    store = await open_store(database_url)
    try:
        results = await store.apply_many([queued(k, {"k": k}) for k in ("a", "b", "c")])
    finally:
        await store.close()
    assert results == [Outcome.COMMITTED] * 3
    # One transaction: every row carries the same creating transaction id.
    assert await db.fetchval("SELECT count(DISTINCT xmin::text) FROM events") == 1
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency") == 3


async def test_a_bad_message_or_a_duplicate_among_good_ones_gets_its_own_outcome(
    database_url: str, db: asyncpg.Connection
) -> None:
    store = await open_store(database_url)
    try:
        assert await store.apply(queued("dup", {"k": "dup"})) is Outcome.COMMITTED
        batch = [
            queued("a", {"k": "a"}),
            queued("bad", "not json"),
            queued("dup", {"k": "dup"}),
            queued("c", {"k": "c"}),
        ]
        results = await store.apply_many(batch)
    finally:
        await store.close()
    assert results[0] is Outcome.COMMITTED and results[2] is Outcome.DUPLICATE and results[3] is Outcome.COMMITTED
    assert isinstance(results[1], InvalidMessage)
    rows = await db.fetch("SELECT idempotency_key FROM events ORDER BY idempotency_key")
    assert [r["idempotency_key"] for r in rows] == ["a", "c", "dup"]  # each once; nothing of the bad one
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE idempotency_key = 'bad'") == 0


async def test_a_handler_that_swallows_an_error_fails_only_its_ownqueued(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The shared COMMIT comes back as ROLLBACK: nobody is committed, then each alone finds the culprit."""
    store = await open_store(database_url, swallow_database_error)
    try:
        results = await store.apply_many(
            [queued("a", {"swallow": False}), queued("x", {"swallow": True}), queued("c", {"swallow": False})]
        )
    finally:
        await store.close()
    assert results[0] is Outcome.COMMITTED and results[2] is Outcome.COMMITTED
    assert isinstance(results[1], Exception) and getattr(results[1], "kind", "") == "handler"
    assert sorted(r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")) == ["a", "c"]


async def test_the_same_key_twice_in_one_batch_is_applied_once(database_url: str, db: asyncpg.Connection) -> None:
    store = await open_store(database_url)
    try:
        results = await store.apply_many([queued("k", {"k": 1}, group="a"), queued("k", {"k": 1}, group="b")])
    finally:
        await store.close()
    assert results == [Outcome.COMMITTED, Outcome.DUPLICATE]
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_the_built_in_batch_form_stores_what_the_handler_stores_message_byqueued(
    database_url: str, db: asyncpg.Connection
) -> None:
    """insert_event's batch form (one INSERT ... FROM unnest) against the same handler called per message."""

    async def one_by_one(conn: asyncpg.Connection, message: Message) -> None:  # no batch form
        await insert_event(conn, message)

    def batch(prefix: str) -> list[Message]:
        return [
            Message(
                queue_url=URL,
                queue_name="q.fifo",
                message_id=f"id-{prefix}{i}",
                receipt_handle=f"rh-{i}",
                body=json.dumps({"i": i, "text": "é \u2603", "nested": {"n": [1, 2.5, None]}}),
                group_id=f"g{i}",
                deduplication_id=f"{prefix}{i}",
                receive_count=1,
                sent_timestamp_ms=1_700_000_000_123 + i if i else None,
                attributes={},
            )
            for i in range(4)
        ]

    for handler, prefix in ((insert_event, "batch-"), (one_by_one, "single-")):
        store = await open_store(database_url, handler)
        try:
            assert await store.apply_many(batch(prefix)) == [Outcome.COMMITTED] * 4
        finally:
            await store.close()
    rows = await db.fetch(
        "SELECT idempotency_key AS k, queue_name, message_group_id, message_id, body, sent_at FROM events"
    )
    by_key = {r["k"]: dict(r) for r in rows}
    for i in range(4):
        b, s = by_key[f"batch-{i}"], by_key[f"single-{i}"]
        assert {k: v for k, v in b.items() if k not in ("k", "message_id")} == {
            k: v for k, v in s.items() if k not in ("k", "message_id")
        }
    assert by_key["batch-0"]["sent_at"] is None and by_key["batch-1"]["sent_at"] is not None


async def test_an_event_already_there_makes_the_batch_settle_one_by_one(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The idempotency record was pruned but the event is still there (a redrive months later): that message is
    a duplicate, the others are committed."""
    store = await open_store(database_url)
    try:
        assert await store.apply(queued("old", {"k": "old"})) is Outcome.COMMITTED
        await db.execute("DELETE FROM sqs2pg_idempotency WHERE idempotency_key = 'old'")
        results = await store.apply_many(
            [queued("a", {"k": "a"}), queued("old", {"k": "old"}), queued("c", {"k": "c"})]
        )
    finally:
        await store.close()
    assert results == [Outcome.COMMITTED, Outcome.DUPLICATE, Outcome.COMMITTED]
    assert await db.fetchval("SELECT count(*) FROM events") == 3
    # and `sqs2pg status` can say so: the key is recorded as a duplicate, not left unknown
    answers = await writes.lookup(db, ["old", "a"])
    assert (answers["old"]["status"], answers["a"]["status"]) == ("duplicate", "committed")


def _in_group(group: str, seq: int, body: object | None = None) -> Message:
    """A message of ``group`` with SQS's SequenceNumber ``seq``, on a queue whose numbers are trusted."""
    m = queued(f"{group}-{seq}", {"seq": seq} if body is None else body, group=group)
    m.sequence_number, m.order, m.queue_created = 10**15 + seq, "sequence", 1
    return m


async def _applied_seqs(db: asyncpg.Connection, group: str) -> list[int]:
    rows = await db.fetch("SELECT body FROM events WHERE message_group_id = $1 ORDER BY id", group)
    return [json.loads(r["body"])["seq"] for r in rows]


async def _position(db: asyncpg.Connection, group: str) -> int | None:
    value = await db.fetchval("SELECT sequence_number FROM sqs2pg_group_positions WHERE message_group_id = $1", group)
    return None if value is None else int(value) - 10**15


async def test_a_run_of_one_group_shares_one_transaction_in_order_and_moves_its_position_to_the_last(
    database_url: str, db: asyncpg.Connection
) -> None:
    store = await open_store(database_url)
    try:
        results = await store.apply_many([_in_group("hot", s) for s in range(10)] + [_in_group("other", 0)])
    finally:
        await store.close()
    assert results == [Outcome.COMMITTED] * 11
    assert await db.fetchval("SELECT count(DISTINCT xmin::text) FROM events") == 1  # one transaction
    assert await _applied_seqs(db, "hot") == list(range(10))
    assert await _position(db, "hot") == 9 and await _position(db, "other") == 0


async def test_a_run_that_fails_in_the_middle_applies_what_came_before_and_tries_nothing_after(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The third of a run is not JSON: the shared transaction is rolled back, the first two are applied one at a
    time, the third gets its own error, and the ones after it are Behind (not tried: they go back behind it)."""
    store = await open_store(database_url)
    try:
        run = [_in_group("g", 0), _in_group("g", 1), _in_group("g", 2, "not json"), _in_group("g", 3)]
        results = await store.apply_many([*run, _in_group("h", 0)])
    finally:
        await store.close()
    assert results[:2] == [Outcome.COMMITTED] * 2 and results[4] is Outcome.COMMITTED
    assert isinstance(results[2], InvalidMessage) and isinstance(results[3], Behind)
    assert await _applied_seqs(db, "g") == [0, 1]
    assert await _position(db, "g") == 1  # never past what was applied
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_idempotency WHERE idempotency_key = 'g-3'") == 0


async def test_a_run_whose_first_is_older_than_its_group_is_never_applied_and_its_followers_wait(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The group applied 5 already; a run 3, 6, 7 arrives (a server that broke the group's order): 3 is out of
    order, and 6 and 7 are not tried behind it (nothing applied out of order, nothing applied before its turn)."""
    store = await open_store(database_url)
    try:
        assert await store.apply(_in_group("g", 5)) is Outcome.COMMITTED
        results = await store.apply_many([_in_group("g", 3), _in_group("g", 6), _in_group("g", 7)])
        again = await store.apply_many([_in_group("g", 6), _in_group("g", 7)])  # their turn, after 3 settled
    finally:
        await store.close()
    assert isinstance(results[0], OutOfOrder) and [type(r) for r in results[1:]] == [Behind, Behind]
    assert again == [Outcome.COMMITTED] * 2
    assert await _applied_seqs(db, "g") == [5, 6, 7] and await _position(db, "g") == 7


async def test_a_shared_transaction_a_run_and_a_lone_message_each_cost_three_round_trips(database_url: str) -> None:
    """BEGIN, the keys and positions with the built-in handler's rows in one statement, COMMIT: counted on the wire
    (tests/support/roundtrips.py), with the statements already prepared as they are in a running service. A
    database 1 ms away adds 3 ms to each transaction, however many messages it holds."""
    async with counting(database_url) as (url, trips):
        store = await open_store(url)
        try:
            await store.apply_many([queued(f"warm-{k}", {"k": k}) for k in range(10)])  # prepares the statements
            await store.apply(queued("warm-alone", {"k": 0}))
            measured = {}
            for name, batch in (
                ("ten groups", [queued(f"k-{k}", {"k": k}) for k in range(10)]),
                ("a run of one group", [_in_group("hot", s) for s in range(10)]),
                ("one message", [queued("alone", {"k": 0})]),
            ):
                before = trips.count
                results = await store.apply_many(batch)
                assert results == [Outcome.COMMITTED] * len(batch), name
                measured[name] = trips.count - before
        finally:
            await store.close()
    assert measured == {"ten groups": 3, "a run of one group": 3, "one message": 3}, measured
