"""Order checked, not assumed: a server that breaks FIFO order, a transient failure, a stop mid-poll, a hung SQS.

Each against real PostgreSQL and real SQS servers: the suite's own (moto through sqs2pg's local SQS, fauxqs),
stock moto as users run it (its receives break a group's order when they overlap, and its SequenceNumbers are
random), and servers of the test's own where a test freezes one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import asyncpg
import pytest

from sqs2pg.consume.app import App
from sqs2pg.db.store import Store
from sqs2pg.errors import OutOfOrder
from sqs2pg.handler import insert_event
from sqs2pg.message import Message

from ..support.helpers import (
    REGION,
    Queues,
    group_sequences,
    http_get,
    make_settings,
    metric,
    running,
    start_service,
    wait_until,
    write_report,
)
from ..support.queues import create_fifo_queue
from ..support.servers import fauxqs_installed, free_port, start_fauxqs, start_moto, wait_for_port

pytestmark = pytest.mark.integration


def _credentials(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL_SQS", endpoint),
    ):
        monkeypatch.setenv(name, value)


@pytest.fixture
async def stock_moto(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """moto's own server as users start it (python -m moto.server), with the SDK pointed at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_for_port, port, proc)
        _credentials(monkeypatch, url)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _workload(groups: int, per_group: int) -> list[tuple[dict[str, Any], str, str]]:
    run = uuid.uuid4().hex[:6]
    return [({"seq": s}, f"g{g}", f"{run}-g{g}-{s}") for s in range(per_group) for g in range(groups)]


async def _dead_letter_reasons(client: Any, dlq_url: str) -> list[str]:
    queues = Queues(client, dlq_url, dlq_url)
    return [m["MessageAttributes"]["sqs2pg_error_kind"]["StringValue"] for m in await queues.receive_all(dlq_url)]


def _in_order(sequences: dict[str, list[int]]) -> bool:
    return all(seqs == sorted(seqs) and len(set(seqs)) == len(seqs) for seqs in sequences.values())


async def test_on_stock_moto_one_service_receives_one_at_a_time_and_applies_every_group_in_order(
    database_url: str, db: asyncpg.Connection, stock_moto: str
) -> None:
    """Stock moto numbers messages at random and hands a group to overlapping receives out of order. The service
    sees the numbers are not in order and receives one at a time from then on: every message applied, in order,
    none dead-lettered."""
    async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=stock_moto) as client:
        url, dlq_url = await create_fifo_queue(client, f"stock-{uuid.uuid4().hex[:8]}")
        queues = Queues(client, url, dlq_url)
        sent = _workload(16, 25)
        settings = make_settings(database_url, [url], receive_wait_s="1", max_concurrent_groups="16")
        async with running(settings) as app:
            await queues.send_batch(sent)  # while it runs, as the run did
            await wait_until(lambda: _count(db, len(sent)), timeout_s=90)
            assert metric(app, "sqs2pg_receive_lanes", queue=queues.name) == 1
        assert await db.fetchval("SELECT verdict FROM sqs2pg_queue_order") == "sent"  # for every replica
        sequences = await group_sequences(db)
        assert _in_order(sequences), sequences
        assert sum(map(len, sequences.values())) == len(sent)
        assert await _dead_letter_reasons(client, dlq_url) == []


async def test_on_stock_moto_two_services_never_apply_a_group_out_of_order(
    database_url: str, db: asyncpg.Connection, stock_moto: str
) -> None:
    """Two processes on stock moto: their receives overlap whatever each does, and moto then hands a group's later
    messages to one while the other holds its earlier ones. The first to see the queue judges its numbers (not in
    order) and stores that for every replica; from then on each group's position is its newest SentTimestamp,
    and a message older than what its group applied is dead-lettered as out_of_order, never applied. Nothing is
    lost: every message is applied or in the DLQ."""
    async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=stock_moto) as client:
        url, dlq_url = await create_fifo_queue(client, f"stock2-{uuid.uuid4().hex[:8]}")
        queues = Queues(client, url, dlq_url)
        sent = _workload(16, 40)
        procs = [await start_service(database_url, url, AWS_ENDPOINT_URL_SQS=stock_moto)]
        try:
            # the first replica meets the queue: a few groups' first messages are enough to judge its numbers
            warm = [({"seq": s}, f"w{g}", f"w{g}-{s}") for s in range(6) for g in range(2)]
            await queues.send_batch(warm)
            await wait_until(lambda: _judged(db, queues.name), timeout_s=60)
            assert await db.fetchval("SELECT verdict FROM sqs2pg_queue_order") == "sent"
            procs.append(await start_service(database_url, url, AWS_ENDPOINT_URL_SQS=stock_moto))
            await queues.send_batch(sent)

            async def settled() -> bool:
                done = await queues.depth(dlq_url) + await _applied(db)
                return await queues.depth() == 0 and done >= len(sent) + len(warm)

            await wait_until(settled, timeout_s=120, interval_s=0.5)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            outputs = [
                await asyncio.wait_for(proc.communicate(), 30) for proc in procs
            ]  # (drained: a full pipe blocks)
        assert [proc.returncode for proc in procs] == [0, 0], [err.decode()[-1000:] for _, err in outputs]
        sequences = await group_sequences(db)
        assert _in_order(sequences), sequences
        reasons = await _dead_letter_reasons(client, dlq_url)
        assert set(reasons) <= {"out_of_order"}, reasons
        assert await _applied(db) + len(reasons) == len(sent) + len(warm)  # nothing lost, nothing applied twice
        write_report(
            {"scenario": "stock moto, 2 processes", "sent": len(sent), "dead_lettered_out_of_order": len(reasons)}
        )


async def _judged(db: asyncpg.Connection, queue: str) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM sqs2pg_queue_order WHERE queue_name = $1", queue))


async def test_a_message_older_than_its_group_position_is_never_applied(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The guard itself, by SequenceNumber and by SentTimestamp: whichever replica applied the later message, the
    older one's transaction is rolled back and it fails as out_of_order, naming the later one."""
    store = Store(make_settings(database_url, ["http://x/1/q.fifo"]), insert_event)
    await store.open()
    try:
        for order, later, older in (("sequence", (None, 20), (None, 10)), ("sent", (2000, None), (1000, None))):
            newer = _message(f"{order}-b", order, seq=later[1], sent=later[0])
            stale = _message(f"{order}-a", order, seq=older[1], sent=older[0])
            assert [str(r) for r in await store.apply_many([newer])] == ["committed"]
            (result,) = await store.apply_many([stale])
            assert isinstance(result, OutOfOrder) and newer.message_id in str(result), result
        # the same two in one shared transaction: not together, each alone, the older refused
        a, b = _message("s-1", "sequence", seq=31), _message("s-0", "sequence", seq=30, group="h")
        assert [str(r) for r in await store.apply_many([a, b])] == ["committed", "committed"]
        c, d = _message("s-2", "sequence", seq=29), _message("s-3", "sequence", seq=40, group="h")
        results = await store.apply_many([c, d])
        assert isinstance(results[0], OutOfOrder) and str(results[1]) == "committed"
        # a queue made again (another CreatedTimestamp) starts its groups over
        e = _message("s-4", "sequence", seq=5, created=2)
        assert [str(r) for r in await store.apply_many([e])] == ["committed"]
    finally:
        await store.close()
    keys = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")}
    assert keys == {"sequence-b", "sent-b", "s-1", "s-0", "s-3", "s-4"}


def _message(
    key: str, order: str, seq: int | None = None, sent: int | None = None, group: str = "g", created: int = 1
) -> Message:
    return Message(
        queue_url="http://x/1/q.fifo",
        queue_name="q.fifo",
        message_id=f"m-{key}",
        receipt_handle="r",
        body=json.dumps({"key": key}),
        group_id=group,
        deduplication_id=key,
        receive_count=1,
        sent_timestamp_ms=sent,
        attributes={},
        sequence_number=seq,
        queue_created=created,
        order=order,
    )


async def test_a_head_failing_transiently_keeps_its_place_and_spends_no_receive(
    database_url: str, db: asyncpg.Connection, sqs_client: Any
) -> None:
    """maxReceiveCount 4; the head of a group fails transiently 6 times, then goes through; two good messages
    follow it. Tried again in place, it spends no receive: nothing reaches the DLQ, the three are applied in
    order, each received once. (Handed back to SQS instead, its followers would come back with it each time,
    and SQS would move them all to the DLQ, without reasons.)"""
    url, dlq_url = await create_fifo_queue(sqs_client, f"head-{uuid.uuid4().hex[:8]}", max_receive_count=4)
    queues = Queues(sqs_client, url, dlq_url)
    await queues.send({"seq": 0, "fail_times": 6}, "t", "t-0")
    await queues.send({"seq": 1}, "t", "t-1")
    await queues.send({"seq": 2}, "t", "t-2")
    settings = make_settings(
        database_url, [url], HANDLER="tests.handlers:fail_then_apply", retry_base_s="0.05", retry_max_s="1"
    )
    async with running(settings) as app:
        await wait_until(lambda: _count(db, 3), timeout_s=60)
        assert metric(app, "sqs2pg_messages_total", queue=queues.name, outcome="retried") == 6
        assert metric(app, "sqs2pg_received_messages_total", queue=queues.name) == 3
    assert await group_sequences(db) == {"t": [0, 1, 2]}
    assert await queues.depth(dlq_url) == 0


async def test_a_stop_during_an_idle_long_poll_leaves_nothing_for_the_next_start_to_wait_for(
    database_url: str, db: asyncpg.Connection, queues: Queues
) -> None:
    """Stopped while its long poll waits, the service lets the poll finish (cut short, the server would hand the
    next messages to a connection nobody reads, hidden for a visibility timeout). So what is sent while it is
    down is all visible, and the next start drains it at once."""
    settings = make_settings(database_url, [queues.url], receive_wait_s="2")
    async with running(settings) as app:
        await wait_until(lambda: _polling(app, queues.name), timeout_s=10, interval_s=0.01)
    sent = _workload(7, 43)[:300]
    await queues.send_batch(sent)
    attrs = await queues.client.get_queue_attributes(
        QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0", attrs["Attributes"]
    started = time.monotonic()
    async with running(settings):
        await wait_until(lambda: _count(db, len(sent)), timeout_s=60)
    write_report(
        {"scenario": "restart after a stop mid-poll", "sent": len(sent), "drain_s": time.monotonic() - started}
    )
    assert _in_order(await group_sequences(db))


async def _polling(app: App, queue: str) -> bool:
    return (
        metric(app, "sqs2pg_receives_in_flight", queue=queue) >= 1
        and metric(app, "sqs2pg_sqs_requests_total", queue=queue, operation="receive_message") >= 1
    )


@pytest.mark.parametrize("kind", ["moto", "fauxqs"])
async def test_a_frozen_sqs_is_said_once_and_makes_readyz_503_until_it_answers(
    kind: str, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SQS server stops answering (SIGSTOP) under a running service: one ERROR line and /readyz 503 within the
    receive wait plus 10 s (well inside 45 s), then an INFO line and /readyz 200 once it answers again."""
    if kind == "fauxqs" and not fauxqs_installed():
        pytest.skip("fauxqs is not installed (scripts/bootstrap.sh installs it when npm is available)")
    port = free_port()
    proc = start_moto(port) if kind == "moto" else start_fauxqs(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_for_port, port, proc)
        _credentials(monkeypatch, endpoint)
        async with aioboto3.Session().client("sqs", region_name=REGION, endpoint_url=endpoint) as client:
            url, _ = await create_fifo_queue(client, f"frozen-{uuid.uuid4().hex[:8]}")
        caplog.set_level(logging.INFO, logger="sqs2pg")
        async with running(make_settings(database_url, [url], receive_wait_s="1")) as app:
            assert await _ready(app) == 200
            proc.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()
            try:
                await wait_until(lambda: _ready_is(app, 503), timeout_s=45, interval_s=0.2)
                took_s = time.monotonic() - frozen
            finally:
                proc.send_signal(signal.SIGCONT)
            await wait_until(lambda: _ready_is(app, 200), timeout_s=45, interval_s=0.2)
        said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "sqs2pg"]
        assert said.count(("ERROR", "SQS does not answer")) == 1, said
        assert ("INFO", "SQS answers again") in said, said
        write_report({"scenario": f"frozen SQS ({kind})", "readyz_503_after_s": round(took_s, 1)})
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


async def _ready(app: App) -> int:
    assert app.http_port is not None
    return (await asyncio.to_thread(http_get, app.http_port, "/readyz"))[0]


async def _ready_is(app: App, status: int) -> bool:
    return await _ready(app) == status


async def _count(db: asyncpg.Connection, n: int) -> bool:
    return int(await db.fetchval("SELECT count(*) FROM events")) >= n


async def _applied(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))
