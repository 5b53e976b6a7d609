"""The producer half against real SQS servers and PostgreSQL: the Producer and `sqs2pg send`, write statuses
(`sqs2pg status`, Producer.status, GET /writes/{key}), keys that survive a DLQ redrive, and SNS and EventBridge
envelopes opened by the service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sqs2pg import Producer
from sqs2pg.observe.metrics import Metrics
from sqs2pg.producer import Sent, Write
from sqs2pg.sqs import dlq
from sqs2pg.sqs.client import Sqs

from ..support.helpers import Queues, http_get, make_settings, metric, run_cli, running, wait_until
from ..unit.test_envelope import EVENTBRIDGE, SNS

pytestmark = pytest.mark.integration


async def _depth_is(queues: Queues, url: str, n: int) -> bool:
    return await queues.depth(url) == n


async def _events(db: Any) -> dict[str, list[tuple[str, Any]]]:
    rows = await db.fetch("SELECT message_group_id AS g, idempotency_key AS k, body FROM events ORDER BY id")
    out: dict[str, list[tuple[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["g"], []).append((r["k"], json.loads(r["body"])))
    return out


async def _status_is(database_url: str, key: str, status: str) -> bool:
    ran = await run_cli("status", key, "--json", env={"DATABASE_URL": database_url})
    return bool(json.loads(ran.stdout)["status"] == status)


async def _check_statuses(database_url: str, queues: Queues) -> None:
    async with Producer(queues.url, database_url=database_url) as producer:
        status = await producer.status(["a-0", "b-poison", "nope"])
    assert status["a-0"]["status"] == "committed" and status["a-0"]["queue"] == queues.name
    assert status["b-poison"]["status"] == "dead_lettered"
    assert status["b-poison"]["error_kind"] == "invalid_message" and "JSON object" in status["b-poison"]["reason"]
    assert status["nope"] == {"key": "nope", "status": "unknown"}
    ran = await run_cli("status", "a-0", "b-poison", "nope", env={"DATABASE_URL": database_url})
    assert ran.returncode == 1, ran  # not every key is committed
    lines_out = ran.stdout.splitlines()
    assert lines_out[0].startswith("a-0: committed (") and lines_out[1].startswith("b-poison: dead_lettered (")
    assert lines_out[2].startswith("nope: unknown")


async def test_producer_and_send_deliver_in_order_with_keys_that_status_reports_and_a_redrive_keeps(
    database_url: str, db: Any, queues: Queues
) -> None:
    env = {"SQS_QUEUE_URLS": queues.url}
    async with Producer(queues.url, database_url=database_url) as producer:
        results = await producer.send_many(
            [Write({"n": i}, "a", f"a-{i}") for i in range(12)]  # two batches, one group: in order
            + [Write({"n": 0}, "b"), Write("[1]", "b", "b-poison"), Write({"n": 2}, "b", "b-2")]
        )
        assert all(isinstance(r, Sent) for r in results), results
        generated = results[12].key
        assert generated and generated not in {f"a-{i}" for i in range(12)}
        one = await producer.send({"n": 3}, group="b", key="b-3")
        assert one.key == "b-3" and one.message_id
        # sent again with the same key within the deduplication window: SQS drops it
        assert (await producer.send({"n": 3}, group="b", key="b-3")).key == "b-3"

    # `sqs2pg send`: JSON lines in; a line that is not a write is named and not sent, the rest go
    lines = "\n".join(
        [
            json.dumps({"group": "c", "key": "c-0", "body": {"n": 0}, "attributes": {"source": "cli"}}),
            "not json",
            "",
            json.dumps({"group": "c", "key": "c-1", "body": {"n": 1}}),
            json.dumps({"body": {"n": 9}}),
        ]
    )
    ran = await run_cli("send", "--print-keys", env=env, stdin=lines)
    assert ran.returncode == 1, ran
    assert "line 2: not sent: not JSON" in ran.stderr and "line 5: not sent: not a write" in ran.stderr
    assert "2 sent to " in ran.stderr and "2 failed" in ran.stderr  # stdout: the keys alone
    assert [line.split("\t")[:2] for line in ran.stdout.splitlines()] == [["c-0", "c"], ["c-1", "c"]]
    plain = await run_cli("send", "--group", "d", env=env, stdin='{"n": 0}\n{"n": 1}\n')
    assert plain.returncode == 0 and "2 sent" in plain.stdout, plain

    settings = make_settings(database_url, [queues.url], HANDLER="tests.handlers:accept_anything_once_fixed")
    async with running(settings) as app:
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
        await wait_until(lambda: _depth_is(queues, queues.dlq_url, 1))
        assert metric(app, "sqs2pg_messages_total", queue=queues.name, outcome="dead_lettered") == 1
        await _check_statuses(database_url, queues)
        # The handler is fixed; the poison message, redriven, is applied under the key its producer gave it.
        await db.execute("CREATE TABLE handler_fixed ()")
        sqs = Sqs(settings, Metrics())
        await sqs.open()
        try:
            moved = await dlq.redrive(sqs, await sqs.describe(queues.url), 10, False, report=lambda _: None)
            assert moved.moved == 1
        finally:
            await sqs.close()
        await wait_until(lambda: _status_is(database_url, "b-poison", "committed"))
    events = await _events(db)
    assert [k for k, _ in events["a"]] == [f"a-{i}" for i in range(12)]
    # the redriven one joins the back of its group
    assert events["b"] == [(generated, {"n": 0}), ("b-2", {"n": 2}), ("b-3", {"n": 3}), ("b-poison", {"raw": "[1]"})]
    assert [k for k, _ in events["c"]] == ["c-0", "c-1"] and [b["n"] for _, b in events["d"]] == [0, 1]


async def test_sns_and_eventbridge_envelopes_are_opened_and_malformed_ones_dead_lettered(
    database_url: str, db: Any, queues: Queues
) -> None:
    no_key = {k: v for k, v in SNS.items() if k != "MessageAttributes"}
    await queues.send(SNS, "g", "sns-1")  # as SNS delivers it: the notification is the SQS body
    await queues.send(EVENTBRIDGE, "g", "eb-1")
    await queues.send({"plain": True}, "g", "plain-1")
    await queues.send({**SNS, "Message": None}, "g", "bad-sns")
    await queues.send({**EVENTBRIDGE, "detail": "not an object"}, "g", "bad-eb")
    await queues.send({**no_key, "Message": '{"second": true}'}, "g", "sns-2")
    settings = make_settings(database_url, [queues.url], envelope="auto")
    async with running(settings):
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
        await wait_until(lambda: _depth_is(queues, queues.dlq_url, 2))
    rows = await db.fetch("SELECT idempotency_key AS k, body, envelope FROM events ORDER BY id")
    assert [(r["k"], json.loads(r["body"]), r["envelope"]) for r in rows] == [
        ("order-42-paid", {"order": 42, "status": "paid"}, "sns"),  # the key set on the SNS publish
        (EVENTBRIDGE["id"], EVENTBRIDGE["detail"], "eventbridge"),  # the event's id
        ("plain-1", {"plain": True}, None),
        ("sns-2", {"second": True}, "sns"),  # no key attribute: the deduplication id, as without an envelope
    ]
    dead = await queues.receive_all(queues.dlq_url)
    assert sorted(m["MessageAttributes"]["sqs2pg_error_kind"]["StringValue"] for m in dead) == ["invalid_envelope"] * 2
    # the dead-letter copies carry the envelopes as they came, so a redrive opens them again
    assert sorted(json.loads(m["Body"]).get("Type", "eb") for m in dead) == ["Notification", "eb"]
    # a producer asking about them hears dead_lettered with the reason, under the key the queue message carried
    ran = await run_cli("status", "bad-sns", "bad-eb", "--json", env={"DATABASE_URL": database_url})
    answers = {a["key"]: a for a in map(json.loads, ran.stdout.splitlines())}
    assert [(answers[k]["status"], answers[k]["error_kind"]) for k in ("bad-sns", "bad-eb")] == [
        ("dead_lettered", "invalid_envelope")
    ] * 2, ran.stdout


async def test_writes_endpoint_is_off_by_default_and_when_on_answers_without_bodies(
    database_url: str, queues: Queues
) -> None:
    await queues.send({"secret": "s3cr3t-body"}, "g", "w-1")
    await queues.send("not an object", "g", "w-2")
    async with running(make_settings(database_url, [queues.url])) as app:
        await wait_until(lambda: _depth_is(queues, queues.url, 0))
        await wait_until(lambda: _depth_is(queues, queues.dlq_url, 1))
        assert app.http_port is not None
        status, text = await asyncio.to_thread(http_get, app.http_port, "/writes/w-1")
        assert status == 404 and "SQS2PG_WRITES_ENDPOINT=on" in text
    async with running(make_settings(database_url, [queues.url], writes_endpoint="on")) as app:
        assert app.http_port is not None
        status, text = await asyncio.to_thread(http_get, app.http_port, "/writes/w-1")
        assert status == 200 and json.loads(text)["status"] == "committed" and "s3cr3t" not in text
        status, text = await asyncio.to_thread(http_get, app.http_port, "/writes/w-2")
        assert status == 200 and json.loads(text)["status"] == "dead_lettered" and "not an object" not in text
        status, text = await asyncio.to_thread(http_get, app.http_port, "/writes/never-sent")
        assert status == 404 and json.loads(text) == {"key": "never-sent", "status": "unknown"}


@pytest.mark.one_sqs
async def test_status_gives_one_line_per_key_whatever_the_reason_holds(database_url: str, db: Any) -> None:
    await db.execute(
        "INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, status, error_kind,"
        " reason) VALUES ('k-1', '\\x00', 'q.fifo', 'm-1', 'dead_lettered', 'handler_error',"
        " E'CheckViolationError: new row violates check constraint \"c\"\\nDETAIL:  Failing row contains (1)')"
    )
    ran = await run_cli("status", "k-1", "k-2", env={"DATABASE_URL": database_url})
    lines = ran.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("k-1: dead_lettered (") and "\\nDETAIL" in lines[0], ran.stdout
    assert lines[1].startswith("k-2: unknown")
