"""The group dispatcher's ordering and release decisions, with no server."""

import asyncio
import itertools

from sqs2pg.consume.dispatcher import Dispatcher
from sqs2pg.message import Message

_ids = itertools.count()


def msg(group: str, seq: int, queue: str = "q.fifo") -> Message:
    n = next(_ids)
    return Message(
        queue_url=f"http://sqs/1/{queue}",
        queue_name=queue,
        message_id=f"m{n}",
        receipt_handle=f"r{n}",
        body=f'{{"seq": {seq}}}',
        group_id=group,
        deduplication_id=f"d{n}",
        receive_count=1,
        sent_timestamp_ms=None,
        attributes={},
    )


async def test_one_group_is_handed_out_one_message_at_a_time_in_order() -> None:
    d = Dispatcher(capacity=100)
    for s in range(3):
        d.add(msg("a", s))
    first = await d.next()
    assert first is not None and first.body == '{"seq": 0}'
    # While "a" is busy nobody else gets a message of it.
    assert await _next_or_none(d) is None
    d.done(first)
    second = await d.next()
    assert second is not None and second.body == '{"seq": 1}'


async def test_groups_run_side_by_side_and_same_group_in_other_queue_is_separate() -> None:
    d = Dispatcher(capacity=100)
    d.add(msg("a", 0))
    d.add(msg("b", 0))
    d.add(msg("a", 0, queue="other.fifo"))
    got = [await d.next() for _ in range(3)]
    assert {(m.queue_name, m.group_id) for m in got if m} == {("q.fifo", "a"), ("q.fifo", "b"), ("other.fifo", "a")}


async def test_many_workers_keep_per_group_order() -> None:
    d = Dispatcher(capacity=1000)
    for s in range(50):
        for g in "abcdefgh":
            d.add(msg(g, s))
    seen: dict[str, list[int]] = {}
    active: set[str] = set()

    async def worker() -> None:
        while (m := await d.next()) is not None:
            assert m.group_id not in active, "two workers in one group"
            active.add(m.group_id)
            await asyncio.sleep(0)
            seen.setdefault(m.group_id, []).append(int(m.body.split(":")[1].rstrip("}")))
            active.discard(m.group_id)
            d.done(m)
            if d.held == 0:
                d.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(5))), 5)
    assert seen == {g: list(range(50)) for g in "abcdefgh"}


async def test_take_rest_removes_the_followers_of_a_failed_message() -> None:
    d = Dispatcher(capacity=100)
    a = [msg("a", s) for s in range(4)]
    for m in a:
        d.add(m)
    d.add(msg("b", 0))
    head = await d.next()
    assert head is a[0]
    assert d.take_rest(head) == a[1:]
    d.done(head)
    assert d.held == 1
    nxt = await d.next()
    assert nxt is not None and nxt.group_id == "b"


async def test_back_pressure_waits_for_room() -> None:
    d = Dispatcher(capacity=10)
    for s in range(8):
        d.add(msg("a", s))
    waiter = asyncio.create_task(d.wait_for_room(5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    for _ in range(3):
        m = await d.next()
        assert m is not None
        d.done(m)
    await asyncio.wait_for(waiter, 1)


async def test_close_returns_unstarted_messages_and_wakes_idle_workers() -> None:
    d = Dispatcher(capacity=100)
    idle = asyncio.create_task(d.next())
    await asyncio.sleep(0)
    for s in range(3):
        d.add(msg("a", s))
    busy = await idle
    assert busy is not None
    waiting = asyncio.create_task(d.next())
    await asyncio.sleep(0)
    unstarted = d.close()
    assert [m.body for m in unstarted] == ['{"seq": 1}', '{"seq": 2}']
    assert await asyncio.wait_for(waiting, 1) is None
    assert list(d.held_messages()) == [busy]
    d.done(busy)
    assert d.held == 0


async def _next_or_none(d: Dispatcher) -> Message | None:
    try:
        return await asyncio.wait_for(d.next(), 0.05)
    except TimeoutError:
        return None


def _seqs(batch: list[Message]) -> list[tuple[str, int]]:
    return [(m.group_id, int(m.body.split(": ")[1].rstrip("}"))) for m in batch]


async def test_a_batch_takes_one_head_per_ready_group_up_to_the_limit_before_any_run() -> None:
    d = Dispatcher(capacity=100)
    for g in "abcd":
        for s in range(2):
            d.add(msg(g, s))
    batch = await d.next_batch(3)
    assert _seqs(batch) == [("a", 0), ("b", 0), ("c", 0)]
    # only "d" is ready (a, b, c are busy until done()): its head, then the message right behind it (a run)
    rest = await d.next_batch(10)
    assert _seqs(rest) == [("d", 0), ("d", 1)]
    for m in batch:
        d.done(m)
    again = await d.next_batch(10)
    assert _seqs(again) == [("a", 1), ("b", 1), ("c", 1)]


async def test_a_hot_group_goes_in_runs_in_order_and_is_busy_until_the_whole_run_is_done() -> None:
    d = Dispatcher(capacity=100)
    for s in range(25):
        d.add(msg("hot", s))
    run = await d.next_batch(10)
    assert _seqs(run) == [("hot", s) for s in range(10)]
    for m in run[:9]:
        d.done(m)
    assert await _next_or_none(d) is None  # the run's last one is not done: the group stays busy
    d.done(run[9])
    assert d.held == 15
    assert _seqs(await d.next_batch(10)) == [("hot", s) for s in range(10, 20)]


async def test_a_run_that_fails_in_the_middle_keeps_its_group_in_order() -> None:
    """The run's third fails transiently: the first two are done, the two after it go back behind it (put back),
    and after the backoff the same message heads the next run, its followers behind it in their order."""
    d = Dispatcher(capacity=100)
    for s in range(6):
        d.add(msg("g", s))
    run = await d.next_batch(5)
    assert _seqs(run) == [("g", s) for s in range(5)]
    d.done(run[0])
    d.done(run[1])
    d.put_back(run[3:])
    d.retry_later(run[2], 0.01)
    assert d.held == 4 and not any(d.is_busy(m) for m in run)
    again = await asyncio.wait_for(d.next_batch(10), 1)
    assert again[0] is run[2] and _seqs(again) == [("g", s) for s in range(2, 6)]


async def test_put_back_after_the_failed_one_was_settled_still_hands_the_group_out() -> None:
    d = Dispatcher(capacity=100)
    for s in range(3):
        d.add(msg("g", s))
    run = await d.next_batch(3)
    d.done(run[0])  # dead-lettered, say, before its followers were put back
    d.put_back(run[1:])
    assert _seqs(await asyncio.wait_for(d.next_batch(10), 1)) == [("g", 1), ("g", 2)]


async def test_closing_ends_batches_for_every_waiting_worker() -> None:
    d = Dispatcher(capacity=100)
    waiting = [asyncio.create_task(d.next_batch(10)) for _ in range(3)]
    await asyncio.sleep(0)
    d.close()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [[], [], []]
