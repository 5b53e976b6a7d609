"""Traces over the wire: `sqs2pg send`, `sqs2pg run` and `sqs2pg dlq redrive` as users run them, with OTEL_*
pointing at an OTLP/HTTP receiver in a process of its own (tests/support/otlp_receiver.py decodes what arrives
with opentelemetry-proto), against real PostgreSQL and each SQS emulator. A producer's trace continues through
sqs2pg to the row; a dead-lettered write's trace goes on through its redrive."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ..support.helpers import Queues, run_cli, start_service, wait_until
from ..support.servers import ROOT, free_port, port_answers

pytestmark = pytest.mark.integration

# A producer that propagates by hand (another language's SDK, say): its context, as the traceparent attribute.
HAND_TRACE = "0af7651916cd43dd8448eb211c80319c"
HAND_PARENT = "b7ad6b7169203331"
CONSUMER, PRODUCER, CLIENT = 5, 4, 3  # OTLP span kinds


class Receiver:
    def __init__(self, port: int, path: Path) -> None:
        self.port, self.path = port, path

    @property
    def env(self) -> dict[str, str]:
        """OTEL_* as a user sets them to send traces here (batches flushed every 50 ms, so the test waits less)."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}", "OTEL_BSP_SCHEDULE_DELAY": "50"}

    def spans(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        complete = text[: text.rfind("\n") + 1]  # a line still being written is read next time
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def has(self, prefix: str, **fields: Any) -> bool:
        """Whether a span of that name with those top-level fields arrived (spans are sent in batches, the last
        ones as the process stops)."""
        return any(all(s[k] == v for k, v in fields.items()) for s in self.named(prefix))

    def named(self, prefix: str, **attributes: Any) -> list[dict[str, Any]]:
        return [
            s
            for s in self.spans()
            if s["name"].startswith(prefix) and all(s["attributes"].get(k) == v for k, v in attributes.items())
        ]


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp_receiver", str(port), str(tmp_path / "spans.jsonl")], cwd=ROOT
    )
    try:
        await wait_until(lambda: asyncio.to_thread(port_answers, port), timeout_s=30)
        yield Receiver(port, tmp_path / "spans.jsonl")
    finally:
        proc.terminate()
        proc.wait(10)


async def _run_until(database_url: str, queues: Queues, env: dict[str, str], done: Any) -> str:
    """`sqs2pg run` until done() holds, then a clean stop (which sends the buffered spans); its log lines."""
    proc = await start_service(database_url, queues.url, **env)
    try:
        await wait_until(done, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_a_producers_trace_continues_to_the_row_and_a_dead_lettered_writes_through_its_redrive(
    database_url: str, db: asyncpg.Connection, queues: Queues, receiver: Receiver
) -> None:
    sqs_env = {"SQS_QUEUE_URLS": queues.url}
    # 1. A write through `sqs2pg send`, a producer with OTEL_* set: its send span's context goes with it.
    sent = await run_cli(
        "send",
        "--group",
        "g-good",
        "--print-keys",
        env={**sqs_env, **receiver.env, "OTEL_SERVICE_NAME": "orders-api"},
        stdin='{"order": 1}\n',
    )
    assert sent.returncode == 0, sent.stderr
    await wait_until(lambda: bool(receiver.named("send", **{"messaging.destination.name": queues.name})))
    (producer_send,) = receiver.named("send")
    assert producer_send["service"] == "orders-api" and producer_send["kind"] == PRODUCER
    # 2. A write that is not JSON, its context set by hand: it will be dead-lettered.
    await queues.send(
        "not json",
        "g-bad",
        "bad-1",
        {"traceparent": {"DataType": "String", "StringValue": f"00-{HAND_TRACE}-{HAND_PARENT}-01"}},
    )

    async def settled() -> bool:
        applied = await db.fetchval("SELECT count(*) FROM events")
        return applied == 1 and await queues.depth(queues.dlq_url) == 1

    logs = await _run_until(database_url, queues, receiver.env, settled)
    await wait_until(lambda: receiver.has("process", trace_id=producer_send["trace_id"]))
    await wait_until(lambda: receiver.has("process", trace_id=HAND_TRACE))
    await wait_until(lambda: receiver.has("delete"))

    # The good write: one trace from the producer's send to the row.
    trace_id = producer_send["trace_id"]
    (process,) = [s for s in receiver.named("process") if s["trace_id"] == trace_id]
    assert process["parent_span_id"] == producer_send["span_id"] and process["kind"] == CONSUMER
    assert process["service"] == "sqs2pg"
    attrs = process["attributes"]
    assert attrs["messaging.system"] == "aws_sqs" and attrs["messaging.destination.name"] == queues.name
    assert attrs["sqs2pg.outcome"] == "committed" and attrs["sqs2pg.message_group_id"] == "g-good"
    assert attrs["messaging.message.id"] == sent.stdout.split("\t")[2].strip()
    # its transaction: a child of it, or (shared with the other write) one span linked to it
    transaction = [
        s
        for s in receiver.named("transaction")
        if s["parent_span_id"] == process["span_id"]
        or {"trace_id": trace_id, "span_id": process["span_id"]} in s["links"]
    ]
    assert transaction and all(t["attributes"]["db.system.name"] == "postgresql" for t in transaction)
    assert {t["attributes"]["sqs2pg.transaction"] for t in transaction} == {"apply"}
    assert any(t["status"] != 2 for t in transaction)
    # its delete, under it; the receive that brought it, linked to the producer
    assert [
        s["name"]
        for s in receiver.spans()
        if s["parent_span_id"] == process["span_id"] and s["name"].startswith("delete")
    ]
    assert any(
        {"trace_id": trace_id, "span_id": producer_send["span_id"]} in s["links"] for s in receiver.named("receive")
    )

    # The bad write: its attempt under the hand-set parent, failed, and its copy's send span under it.
    (failed,) = [s for s in receiver.named("process") if s["trace_id"] == HAND_TRACE]
    assert failed["parent_span_id"] == HAND_PARENT and failed["status"] == 2
    assert failed["attributes"]["sqs2pg.outcome"] == "dead_lettered"
    assert failed["attributes"]["error.type"] == "invalid_message"
    under_failed = [s for s in receiver.spans() if s["parent_span_id"] == failed["span_id"]]
    purposes = {s["attributes"].get("sqs2pg.transaction") for s in under_failed if s["name"].startswith("transaction")}
    assert "dead_letter_record" in purposes  # the record that it was dead-lettered, and why
    (copy_send,) = [s for s in receiver.named("send") if s["parent_span_id"] == failed["span_id"]]
    assert copy_send["kind"] == PRODUCER and copy_send["trace_id"] == HAND_TRACE
    # its log line carries the trace and the span of the attempt
    dead = [json.loads(line) for line in logs.splitlines() if '"message dead_lettered"' in line]
    assert [(d["trace_id"], d["span_id"]) for d in dead] == [(HAND_TRACE, failed["span_id"])]

    # 3. Redriven (`sqs2pg dlq redrive`, tracing too): the copy's next attempt joins the same trace.
    redriven = await run_cli("dlq", "redrive", env={**sqs_env, **receiver.env})
    assert redriven.returncode == 0, redriven.stderr
    await wait_until(lambda: any(s["parent_span_id"] == copy_send["span_id"] for s in receiver.named("send")))
    (redrive_send,) = [s for s in receiver.named("send") if s["parent_span_id"] == copy_send["span_id"]]

    async def dead_again() -> bool:
        return await queues.depth(queues.dlq_url) == 1 and await queues.depth() == 0

    await _run_until(database_url, queues, receiver.env, dead_again)
    await wait_until(lambda: receiver.has("process", parent_span_id=redrive_send["span_id"]))
    again = [s for s in receiver.named("process") if s["parent_span_id"] == redrive_send["span_id"]]
    assert [(s["trace_id"], s["attributes"]["sqs2pg.outcome"]) for s in again] == [(HAND_TRACE, "dead_lettered")]
