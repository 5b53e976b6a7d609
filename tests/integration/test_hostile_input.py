"""Hostile input: keys PostgreSQL cannot store, sqs2pg's own attributes smuggled inside an envelope, more
attributes than a dead-letter copy can carry, valid JSON beyond Python's limits. Each is dealt with at once, with
its reason, and its group goes on."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from ..support.helpers import Queues, group_sequences, make_settings, metric, run_cli, running, wait_until

pytestmark = pytest.mark.integration


def _sns(inner: dict[str, Any], attributes: dict[str, str]) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders.fifo",
            "Message": json.dumps(inner),
            "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in attributes.items()},
        }
    )


def _eventbridge(event_id: str, detail: dict[str, Any]) -> str:
    return json.dumps({"id": event_id, "source": "orders", "detail-type": "OrderPaid", "detail": detail})


async def _settled(app: Any, queues: Queues, n: int) -> bool:
    final = sum(
        metric(app, "sqs2pg_messages_total", queue=queues.name, outcome=o)
        for o in ("committed", "duplicate", "dead_lettered")
    )
    return final >= n and await queues.depth() == 0


async def test_keys_postgresql_cannot_store_are_dead_lettered_at_once_and_their_group_goes_on(
    database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    """A NUL or a lone surrogate in an envelope's key (JSON escapes SQS accepts): dead-lettered at once, recorded
    under the key's hash, never retried (it used to be called "database unavailable" and block its group)."""
    await queues.send(_sns({"seq": 0}, {"idempotency_key": "nul\u0000x"}), "g", "d-0")
    await queues.send(_sns({"seq": 1}, {"idempotency_key": "sur\ud800"}), "g", "d-1")
    await queues.send(_eventbridge("ev\u0000ent", {"seq": 2}), "g", "d-2")
    await queues.send(_sns({"seq": 3}, {"idempotency_key": "fine-3"}), "g", "d-3")
    async with running(make_settings(database_url, [queues.url], SQS2PG_ENVELOPE="auto")) as app:
        await wait_until(lambda: _settled(app, queues, 4), timeout_s=30)
        assert metric(app, "sqs2pg_messages_total", queue=queues.name, outcome="retried") == 0
        assert metric(app, "sqs2pg_circuit_open") == 0
    assert await group_sequences(db) == {"g": [3]}
    reasons = await db.fetch("SELECT idempotency_key, reason FROM sqs2pg_idempotency WHERE status = 'dead_lettered'")
    assert len(reasons) == 3 and all(r["idempotency_key"].startswith("sha256:") for r in reasons), reasons
    assert all("cannot be stored" in r["reason"] for r in reasons)
    copies = await queues.receive_all(queues.dlq_url)
    assert len(copies) == 3


async def test_sqs2pgs_own_attributes_inside_an_envelope_are_dropped(
    database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    """An SNS notification carrying sqs2pg_drill would have been written to the drill table, not the handler's."""
    await queues.send(_sns({"seq": 0}, {"sqs2pg_drill": "run-x", "idempotency_key": "e-0"}), "g", "e-0")
    async with running(make_settings(database_url, [queues.url], SQS2PG_ENVELOPE="sns")) as app:
        await wait_until(lambda: _settled(app, queues, 1), timeout_s=30)
    assert await group_sequences(db) == {"g": [0]}  # in events, through the handler
    assert await db.fetchval("SELECT count(*) FROM sqs2pg_drill") == 0


async def test_attributes_a_dlq_copy_cannot_carry_are_named_and_a_redrive_restores_them(
    database_url: str, queues: Queues
) -> None:
    """Nine attributes and the key: sqs2pg's four reason attributes leave room for five of them on the DLQ copy.
    The dead-letter record keeps all of them, and `sqs2pg dlq redrive` (with DATABASE_URL) sends them back."""
    attributes = {f"a{i}": {"DataType": "String", "StringValue": f"v{i}"} for i in range(9)}
    attributes["idempotency_key"] = {"DataType": "String", "StringValue": "many-1"}
    await queues.send("not json", "g", "many-1", attributes)
    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _settled(app, queues, 1), timeout_s=30)
    result = await run_cli(
        "dlq", "redrive", "--limit", "5", env={"DATABASE_URL": database_url, "SQS_QUEUE_URLS": queues.url}
    )
    assert result.returncode == 0 and "1 moved" in result.stdout, result.stdout + result.stderr
    (back,) = await queues.receive_all(queues.url)
    names = set(back["MessageAttributes"])
    assert {f"a{i}" for i in range(8)} <= names and "idempotency_key" in names, names
    assert "left out" in result.stdout  # the tenth: the redriven copy's own marker took its place, and it says so


async def test_valid_json_beyond_pythons_limits_is_parsed_or_dead_lettered_with_the_reason(
    database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    big = '{"n": ' + "7" * 5000 + "}"
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    await queues.send(big, "g", "big-1")
    await queues.send(deep, "g", "deep-1")
    await queues.send({"seq": 2}, "g", "after-2")
    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _settled(app, queues, 3), timeout_s=30)
    committed = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")}
    assert committed == {"big-1", "after-2"}  # a 5,000-digit integer is applied whole
    assert await db.fetchval("SELECT length(body->>'n') FROM events WHERE idempotency_key = 'big-1'") == 5000
    reason = await db.fetchval("SELECT reason FROM sqs2pg_idempotency WHERE idempotency_key = 'deep-1'")
    assert "nested deeper than sqs2pg parses" in reason
