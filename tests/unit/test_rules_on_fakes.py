"""The ordering and settling rules, on in-memory fakes (tests/support/fakes.py): milliseconds, no server.

The same claims are proven against real PostgreSQL and real SQS emulators in tests/integration; these pin
the rules themselves so that a change that breaks one fails here first, and fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from sqs2pg.consume.app import App
from sqs2pg.consume.breaker import Breaker
from sqs2pg.consume.deletes import DeleteBatcher
from sqs2pg.consume.dispatcher import Dispatcher
from sqs2pg.consume.holdings import Holdings
from sqs2pg.consume.housekeeping import heartbeat
from sqs2pg.consume.settle import Settler
from sqs2pg.errors import Behind, Outcome, PermanentError, RetryableError, Sqs2pgError
from sqs2pg.message import Message, queue_name
from sqs2pg.observe.metrics import Metrics

from ..support.fakes import QUEUE_URL, FakeSqs, FakeStore
from ..support.helpers import make_settings, metric, running, wait_until


def _settings(**knobs: str):  # type: ignore[no-untyped-def]
    return make_settings("postgresql://fake@127.0.0.1:1/fake", [QUEUE_URL], **{"retry_base_s": "0", **knobs})


async def _fake_app(sqs: FakeSqs, store: FakeStore, **knobs: str) -> App:
    return App(_settings(**knobs), store=store, sqs=sqs)


def _in_order(store: FakeStore, groups: int, per_group: int) -> None:
    seqs: dict[str, list[int]] = {}
    for _, group, body in store.applied:
        seqs.setdefault(group, []).append(json.loads(body)["seq"])
    assert seqs == {f"g{g}": list(range(per_group)) for g in range(groups)}
    assert len(store.keys) == groups * per_group


@pytest.mark.parametrize("per_group", [1, 10])
async def test_every_message_once_and_in_order_though_some_fail_transiently_at_first(per_group: int) -> None:
    """per_group 1 is fauxqs's rule (one message of a group in flight), 10 is SQS's and moto's."""
    sqs = FakeSqs(per_group=per_group)
    for s in range(10):
        for g in range(20):
            sqs.send_message(json.dumps({"seq": s}), f"g{g}", f"g{g}-{s}")

    def fail(message: Message) -> Exception | None:
        seq = json.loads(message.body)["seq"]
        return (
            RetryableError("serialization failure", kind="serialization")
            if seq % 4 == 1 and message.attempts == 0
            else None
        )

    store = FakeStore(fail=fail)
    async with running(App(_settings(), store=store, sqs=sqs)) as app:
        await wait_until(lambda: _applied(store, 200), timeout_s=30, interval_s=0.01)
        q = queue_name(QUEUE_URL)
        assert (
            metric(app, "sqs2pg_messages_total", queue=q, outcome="retried") == 60
        )  # seqs 1, 5 and 9 of each group, once each
    _in_order(store, 20, 10)
    assert sqs.waiting() == [] and sqs.dead == []
    # tried again in place: no message was received twice, so no receive count moved toward maxReceiveCount
    assert {m.receive_count for m in sqs.messages} == {1}


async def _applied(store: FakeStore, n: int) -> bool:
    return len(store.applied) >= n


def _message(sqs: FakeSqs, raw: dict) -> Message:  # type: ignore[type-arg]
    return Message.from_sqs(sqs.queue_url, raw, 30)


async def _settler(sqs: FakeSqs, dispatcher: Dispatcher, **knobs: str) -> tuple[Settler, DeleteBatcher, Metrics]:
    await sqs.open()
    store = FakeStore()
    metrics = Metrics(["fake.fifo"])
    holdings = Holdings(max_unclaimed=4)
    deletes = DeleteBatcher(sqs, holdings, flush_interval_s=0.005)
    breaker = Breaker(3, _never_down, metrics)
    settler = Settler(
        _settings(**knobs),
        sqs,
        {sqs.queue_url: await sqs.describe(sqs.queue_url)},
        dispatcher,
        breaker,
        holdings,
        deletes,
        metrics,
        store,
    )
    return settler, deletes, metrics


async def _never_down() -> str | None:
    return None


async def test_deletes_are_queued_before_anything_is_awaited() -> None:
    """A cancellation that lands in the first await of settling (here: the dead-letter copy) must find the
    commits' deletes already queued: a commit must never lose its delete to a cancellation."""
    sqs = FakeSqs()
    for i in range(3):
        sqs.send_message(json.dumps({"i": i}), f"g{i}", f"d{i}")
    await sqs.open()
    dispatcher = Dispatcher(100)
    settler, deletes, _ = await _settler(sqs, dispatcher)
    batch = [_message(sqs, raw) for raw in await sqs.receive(sqs.queue_url, wait_s=0)]
    for m in batch:
        dispatcher.add(m)
    batch = await dispatcher.next_batch(3)
    copy_started, never = asyncio.Event(), asyncio.Event()

    async def blocked_copy(*args: object, **kwargs: object) -> tuple[str, list[str]]:
        copy_started.set()
        await never.wait()
        return "full", []

    sqs.send_to_dlq = blocked_copy  # type: ignore[method-assign]
    results: list[Outcome | Sqs2pgError] = [
        Outcome.COMMITTED,
        PermanentError("bad", kind="invalid_message"),
        Outcome.COMMITTED,
    ]
    task = asyncio.create_task(settler.settle(batch, results, 0.001))
    await copy_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await deletes.close()
    deleted = [ids for op, ids in sqs.calls if op == "delete"]
    assert sorted(i for ids in deleted for i in ids) == sorted([batch[0].message_id, batch[2].message_id])


async def test_a_transient_failure_keeps_the_head_in_memory_and_its_group_waits_holding_no_worker() -> None:
    """The head of g fails transiently beside h's commit: it stays at the head of g, in memory (nothing goes back
    to SQS, so no receive count moves), g holds no worker while it waits out its backoff, then the same head is
    handed out again, its followers still behind it."""
    sqs = FakeSqs(per_group=10)
    for s in range(3):
        sqs.send_message(json.dumps({"seq": s}), "g", f"g-{s}")
    sqs.send_message(json.dumps({"seq": 0}), "h", "h-0")
    await sqs.open()
    dispatcher = Dispatcher(100)
    settler, _, metrics = await _settler(sqs, dispatcher, retry_base_s="0.2")
    received = [_message(sqs, raw) for raw in await sqs.receive(sqs.queue_url, wait_s=0)]
    settler.received(received)
    for m in received:
        dispatcher.add(m)
    batch = await dispatcher.next_batch(10)  # the heads of g and h, then g's run behind its head
    assert [m.group_id for m in batch] == ["g", "h", "g", "g"]
    results: list[Outcome | Sqs2pgError] = [
        RetryableError("lost connection", kind="connection"),
        Outcome.COMMITTED,
        Behind(),  # not tried: the store stops a group's run at its first failure
        Behind(),
    ]
    started = time.monotonic()  # g's backoff starts as it is settled
    held = await settler.settle(batch, results, 0.001)
    assert held == [] and dispatcher.held == 3  # g's three, still in memory
    assert not [op for op, _ in sqs.calls if op == "change_visibility"]  # nothing handed back to SQS
    q = queue_name(QUEUE_URL)
    assert metrics.registry.get_sample_value("sqs2pg_messages_total", {"queue": q, "outcome": "retried"}) == 1
    assert metrics.registry.get_sample_value("sqs2pg_in_flight_messages", {"queue": q}) == 3
    # g waits out its backoff (0.1 to 0.2 s from its settling) holding no worker: nothing is ready before it
    again = await asyncio.wait_for(dispatcher.next(), 5)
    assert again is batch[0] and again.attempts == 1 and time.monotonic() - started >= 0.09
    assert [m.body for m in dispatcher.held_messages()] == [m.body for m in received[:3]]  # the head, then its rest


async def test_a_message_that_keeps_failing_transiently_is_dead_lettered_with_its_reason_not_by_sqs() -> None:
    """Past SQS2PG_RETRY_MAX_ATTEMPTS the message is dead-lettered by sqs2pg (retries_exhausted, naming the last
    error), and its followers, which never moved, are applied after it."""
    sqs = FakeSqs(per_group=10, max_receive_count=2)
    for s in range(3):
        sqs.send_message(json.dumps({"seq": s}), "g", f"g-{s}")

    def fail(message: Message) -> Exception | None:
        return RetryableError("deadlock", kind="deadlock") if json.loads(message.body)["seq"] == 0 else None

    store = FakeStore(fail=fail)
    knobs = {"retry_max_attempts": "4", "retry_base_s": "0.01", "retry_max_s": "1"}
    async with running(App(_settings(**knobs), store=store, sqs=sqs)) as app:
        await wait_until(lambda: _applied(store, 2), timeout_s=30, interval_s=0.01)
        assert metric(app, "sqs2pg_messages_total", queue="fake.fifo", outcome="retried") == 3
        assert metric(app, "sqs2pg_messages_total", queue="fake.fifo", outcome="dead_lettered") == 1
    assert [json.loads(body)["seq"] for _, _, body in store.applied] == [1, 2]
    assert [(mid, kind) for op, (mid, kind) in ((op, a) for op, a in sqs.calls if op == "send_to_dlq")] == [
        (sqs.messages[0].id, "retries_exhausted")
    ]
    assert {m.receive_count for m in sqs.messages} == {1}  # SQS's maxReceiveCount (2) never came into it


async def test_the_breaker_counts_only_unavailability_and_closes_on_the_first_good_probe() -> None:
    answers = ["connection refused", None]

    async def probe() -> str | None:
        return answers.pop(0) if answers else None

    metrics = Metrics()
    breaker = Breaker(3, probe, metrics)
    breaker.failure("connection")
    breaker.failure("serialization")  # a conflict is the message's, not the database's: not counted
    breaker.failure("failover")
    assert not breaker.is_open
    breaker.success()  # a success starts the count again
    for _ in range(3):
        breaker.failure("connection")
    assert breaker.is_open and metrics.registry.get_sample_value("sqs2pg_circuit_open") == 1
    runner = asyncio.create_task(breaker.run())
    try:
        await asyncio.wait_for(breaker.wait_closed(), 10)  # the first probe fails, the second answers
    finally:
        runner.cancel()
    assert not breaker.is_open and answers == [] and metrics.registry.get_sample_value("sqs2pg_circuit_open") == 0


async def test_a_stop_hands_back_what_was_not_started_and_deletes_what_committed() -> None:
    sqs = FakeSqs(per_group=10)
    for s in range(10):
        for g in range(5):
            sqs.send_message(json.dumps({"seq": s}), f"g{g}", f"g{g}-{s}")
    store = FakeStore(delay_s=0.01)
    app = App(_settings(max_concurrent_groups="1", transaction_max_messages="1"), store=store, sqs=sqs)
    async with running(app):
        await wait_until(lambda: _applied(store, 3), timeout_s=30, interval_s=0.005)
        stopped = time.monotonic()
    assert time.monotonic() - stopped < 2
    assert sqs.in_flight() == []  # everything received and not finished went back at once
    handed_back = [mid for op, entries in sqs.calls if op == "change_visibility" for mid, s in entries if s == 0]
    deleted = [mid for op, ids in sqs.calls if op == "delete" for mid in ids]
    assert handed_back and len(deleted) == len(store.applied)
    assert len(sqs.waiting()) == 50 - len(store.applied)
    _prefix_in_order(store)


def _prefix_in_order(store: FakeStore) -> None:
    seqs: dict[str, list[int]] = {}
    for _, group, body in store.applied:
        seqs.setdefault(group, []).append(json.loads(body)["seq"])
    assert all(s == list(range(len(s))) for s in seqs.values()), seqs


async def test_the_heartbeat_extends_a_message_held_past_its_fraction() -> None:
    sqs = FakeSqs()
    sqs.send_message("{}", "g", "d")
    await sqs.open()
    dispatcher = Dispatcher(10)
    settler, _, _ = await _settler(sqs, dispatcher)
    (raw,) = await sqs.receive(sqs.queue_url, wait_s=0, visibility_s=1)
    message = _message(sqs, raw)
    message.visible_until = time.monotonic() + 0.3  # within the margin of a 1 s visibility at fraction 0.5
    dispatcher.add(message)
    beat = asyncio.create_task(heartbeat(dispatcher, settler, visibility_timeout_s=1, fraction=0.5))
    try:
        await wait_until(lambda: _extended(sqs), timeout_s=5, interval_s=0.01)
    finally:
        beat.cancel()
    assert message.visible_until > time.monotonic() + 0.5


async def _extended(sqs: FakeSqs, seconds: int = 1) -> bool:
    return any(op == "change_visibility" and entries[0][1] == seconds for op, entries in sqs.calls)


async def test_an_idle_queue_costs_one_long_poll_and_a_stop_lets_it_finish_and_hands_back_what_it_brought() -> None:
    """A stop does not cut a long poll short (the server would hand what it takes to a connection nobody reads):
    the poll in flight finishes, and a message it brings in the meantime is handed back at once."""
    sqs = FakeSqs()
    async with running(App(_settings(receive_wait_s="2"), store=FakeStore(delay_s=30), sqs=sqs)) as app:
        await wait_until(lambda: _receiving(sqs), timeout_s=5, interval_s=0.01)
        assert metric(app, "sqs2pg_receive_lanes", queue="fake.fifo") == 1
        app.stop()
        await asyncio.sleep(0.1)
        sqs.send_message("{}", "late", "late-0")  # arrives during the stop, into the poll still in flight
        stopped = time.monotonic()
    assert time.monotonic() - stopped < 3 and sqs.most_receiving == 1
    assert ("receive", (None, 1)) in sqs.calls  # the poll finished with the message, not cut short
    assert sqs.in_flight() == []  # and it went back at once, visible to the next consumer


async def _receiving(sqs: FakeSqs) -> bool:
    return sqs.receiving == 1


async def test_an_extension_still_out_never_lands_after_a_release() -> None:
    """The heartbeat's extension is slow to land; the message is released meanwhile (shutdown, or behind a
    retried message). The release must win: the message is visible at once, not hidden for another timeout."""
    sqs = FakeSqs(extension_delay_s=0.3)
    sqs.send_message("{}", "g", "d")
    await sqs.open()
    dispatcher = Dispatcher(10)
    settler, _, _ = await _settler(sqs, dispatcher)
    (raw,) = await sqs.receive(sqs.queue_url, wait_s=0, visibility_s=30)
    message = _message(sqs, raw)
    extension = asyncio.create_task(settler.extend([message], 30))
    await wait_until(lambda: _extended(sqs, 30), timeout_s=5, interval_s=0.01)  # sent, not landed yet
    await settler.release([message], "test")
    await extension
    assert sqs.in_flight() == [], "the extension landed after the release and hid the message again"
    # and once handed back, the heartbeat leaves it alone
    await settler.extend([message], 30)
    assert [s for op, entries in sqs.calls if op == "change_visibility" for _, s in entries] == [30, 0]


async def test_a_hand_back_cut_short_at_shutdown_is_counted_once_and_the_gauge_returns_to_zero() -> None:
    """Past every shutdown timeout, a worker is cancelled while its release call is out. The messages are
    handed back all the same (each comes back after its own timeout), counted once, and the in-flight gauge
    returns to zero."""
    sqs = FakeSqs(stall={"change_visibility"})
    for s in range(3):
        sqs.send_message(json.dumps({"seq": s}), "g", f"g-{s}")
    dispatcher = Dispatcher(10)
    settler, _, metrics = await _settler(sqs, dispatcher)
    messages = [_message(sqs, raw) for raw in await sqs.receive(sqs.queue_url, wait_s=0, visibility_s=30)]
    settler.received(messages)
    q = messages[0].queue_name
    assert metrics.registry.get_sample_value("sqs2pg_in_flight_messages", {"queue": q}) == len(messages)
    release = asyncio.create_task(settler.release(messages, "shutdown"))
    await wait_until(lambda: _called(sqs, "change_visibility"), timeout_s=5, interval_s=0.01)
    release.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await release
    settler.abandon(messages)  # what a cancelled worker does with what it held: no second count
    assert metrics.registry.get_sample_value("sqs2pg_in_flight_messages", {"queue": q}) == 0
    released = metrics.registry.get_sample_value("sqs2pg_messages_total", {"queue": q, "outcome": "released"})
    assert released == len(messages)


async def _called(sqs: FakeSqs, op: str) -> bool:
    return any(name == op for name, _ in sqs.calls)


async def test_the_memory_bound_is_hard_however_many_receive_lanes_are_out() -> None:
    """SQS2PG_MAX_IN_MEMORY_MESSAGES is never exceeded, even with 16 receive lanes that could each bring 10
    messages at once: room for a full batch is reserved before each receive."""
    sqs = FakeSqs(per_group=10, receive_delay_s=0.01)
    for s in range(5):
        for g in range(60):
            sqs.send_message(json.dumps({"seq": s}), f"g{g}", f"g{g}-{s}")
    store = FakeStore(delay_s=0.002)
    knobs = {"max_in_memory_messages": "20", "pollers_per_queue": "16", "max_concurrent_groups": "4"}
    async with running(await _fake_app(sqs, store, **knobs)):
        await wait_until(lambda: _applied(store, 300), timeout_s=60, interval_s=0.01)
    _in_order(store, 60, 5)
    assert sqs.most_receiving > 1, "the lanes never overlapped: the bound was not put to the test"
    assert 10 < sqs.most_in_flight <= 20, sqs.most_in_flight
