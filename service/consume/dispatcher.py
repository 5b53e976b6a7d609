"""Dispatch by group: messages of one group strictly one after another, groups side by side.

Pure bookkeeping with no I/O, so its ordering and release decisions are unit-tested without servers.
A group is either *idle* (no messages held), *ready* (queued for a worker), *busy* (one worker has its head
message, and maybe the messages right behind it: a *run*, applied in order in one transaction) or *waiting* (its
head failed transiently and waits out a backoff before it is tried again, holding no worker). A group is in one
state at a time, so two workers never touch the same group.

A group's waiting messages are kept in FIFO order: by SQS's SequenceNumber where the server's numbers were seen
to increase (a server that hands a group's messages to overlapping receives can deliver a later one first;
db/store.py refuses to apply a message older than what its group already applied), else in arrival order.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Iterator

from ..message import Message

GroupKey = tuple[str, str]  # (queue url, message group id)


def group_key(message: Message) -> GroupKey:
    return (message.queue_url, message.group_id)


class Dispatcher:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._groups: dict[GroupKey, deque[Message]] = {}
        self._busy: dict[GroupKey, list[Message]] = {}  # each busy group's run, in order
        self._waiting: dict[GroupKey, asyncio.TimerHandle] = {}  # groups waiting out a backoff
        self._ready: asyncio.Queue[GroupKey | None] = asyncio.Queue()
        self._held = 0
        self._reserved = 0  # room taken by receives in flight (poller.py)
        self._waiting_workers = 0
        self._closed = False
        self._room = asyncio.Event()
        self._room.set()
        self._taken = asyncio.Event()  # a worker took a ready group

    @property
    def held(self) -> int:
        """Messages in memory: waiting in a group or being handled."""
        return self._held

    @property
    def closed(self) -> bool:
        return self._closed

    def has_room(self, n: int) -> bool:
        return self._held + self._reserved + n <= self.capacity or self._closed

    def reserve(self, n: int) -> None:
        """Take room for a receive in flight (it may bring up to n messages); give it back with unreserve()."""
        self._reserved += n

    def unreserve(self, n: int) -> None:
        self._reserved -= n
        self._forget(0)

    def has_demand(self, workers: int) -> bool:
        return self._ready.qsize() < workers or self._closed

    async def wait_for_room(self, n: int) -> None:
        """Back-pressure: wait until n more messages fit under the capacity."""
        while not self.has_room(n):
            self._room.clear()
            await self._room.wait()

    async def wait_for_demand(self, workers: int) -> None:
        """Wait while at least ``workers`` groups are ready and waiting for a worker: receiving more now would
        only lengthen the line. Receiving later, when groups are running out, takes larger batches (more groups
        have become visible again) and costs fewer calls per message."""
        while not self.has_demand(workers):
            self._taken.clear()
            await self._taken.wait()

    def add(self, message: Message) -> None:
        """A received message joins its group: in SequenceNumber order where the server gives one, else at the end."""
        key = group_key(message)
        queue = self._groups.get(key)
        if queue is None:
            queue = self._groups[key] = deque()
        seq = message.order_keys[0]
        if seq is not None and queue and (queue[-1].order_keys[0] or 0) > seq:
            # arrived after a later message of its group that came in another receive: it goes first
            bisect.insort(queue, message, key=lambda m: m.order_keys[0] or 0)
        else:
            queue.append(message)
        self._held += 1
        if len(queue) == 1 and key not in self._busy and key not in self._waiting:
            self._ready.put_nowait(key)

    async def next(self) -> Message | None:
        """The head message of the next ready group (the group is busy until done()); None once closed."""
        while not self._closed:
            self._waiting_workers += 1
            try:
                key = await self._ready.get()
            finally:
                self._waiting_workers -= 1
            self._taken.set()
            if key is None or self._closed:
                break
            if (message := self._take(key)) is not None:
                return message
        return None

    async def next_batch(self, limit: int) -> list[Message]:
        """The head message of the next ready group, plus the heads of up to ``limit - 1`` more groups that are
        ready right now (never waiting for them), then, while there is room, the messages held right behind each
        head, in its group's order (a run: one hot group is not bound to one transaction per message). Each group
        is busy until every message of its run is done(); empty once closed.

        Greedy on purpose, even when other workers are idle: one transaction of ten costs far less CPU than
        ten of one (the benchmark measured 750-950 µs of CPU per message when batches were left to idle workers,
        550-600 when greedy), and the service is CPU-bound long before the database is."""
        first = await self.next()
        if first is None:
            return []
        batch = [first]
        while len(batch) < limit and not self._ready.empty():
            key = self._ready.get_nowait()
            if key is None:  # close()'s wake-up for a waiting worker: leave it for that worker
                self._ready.put_nowait(None)
                break
            if (message := self._take(key)) is not None:
                batch.append(message)
        for head in list(batch):
            if len(batch) >= limit:
                break
            batch.extend(self._follow(group_key(head), limit - len(batch)))
        self._taken.set()
        return batch

    def _take(self, key: GroupKey) -> Message | None:
        queue = self._groups.get(key)
        if not queue or key in self._busy or key in self._waiting:  # emptied, or taken, since it was queued
            return None
        message = queue.popleft()
        self._busy[key] = [message]
        return message

    def _follow(self, key: GroupKey, n: int) -> list[Message]:
        """Up to n of the messages right behind a busy group's run join it."""
        queue = self._groups.get(key)
        run = self._busy[key]
        followers = [queue.popleft() for _ in range(min(n, len(queue)))] if queue else []
        run.extend(followers)
        return followers

    def done(self, message: Message) -> None:
        """The message has been settled: release its slot; once its run is all done, its group's next message
        may be handed out. (Again for the same message: nothing.)"""
        if not self._leave_run(message):
            return
        self._forget(1)
        if group_key(message) not in self._busy:
            self._next_of(group_key(message))

    def retry_later(self, message: Message, delay_s: float) -> None:
        """The busy head failed transiently: it goes back to the head of its group, which holds no worker while it
        waits ``delay_s``, then is ready again (with the same head). Its followers wait behind it."""
        if not self._leave_run(message):
            return
        key = group_key(message)
        self._groups.setdefault(key, deque()).appendleft(message)
        loop = asyncio.get_running_loop()
        self._waiting[key] = loop.call_later(max(0.0, delay_s), self._wake, key)

    def put_back(self, messages: list[Message]) -> None:
        """Messages of a run that were not tried (an earlier one of their group failed): back at the front of their
        group, in their order, behind whatever becomes of the one that failed. Settle puts them back before it acts
        on that one."""
        for message in reversed(messages):
            if self._leave_run(message):
                key = group_key(message)
                self._groups.setdefault(key, deque()).appendleft(message)
                if key not in self._busy and key not in self._waiting:  # the failed one was settled already
                    self._next_of(key)

    def _leave_run(self, message: Message) -> bool:
        key = group_key(message)
        run = self._busy.get(key)
        if run is None or not any(m is message for m in run):
            return False
        run[:] = [m for m in run if m is not message]
        if not run:
            del self._busy[key]
        return True

    def _wake(self, key: GroupKey) -> None:
        self._waiting.pop(key, None)
        self._next_of(key)

    def _next_of(self, key: GroupKey) -> None:
        if self._groups.get(key):
            if not self._closed:
                self._ready.put_nowait(key)
        else:
            self._groups.pop(key, None)

    def is_busy(self, message: Message) -> bool:
        """Handed out to a worker and not yet done()."""
        return any(m is message for m in self._busy.get(group_key(message), ()))

    def take_rest(self, message: Message) -> list[Message]:
        """Remove and return the messages held behind this one in its group (they share its fate)."""
        rest = list(self._groups.get(group_key(message), ()))
        if rest:
            self._groups[group_key(message)].clear()
            self._forget(len(rest))
        return rest

    def close(self) -> list[Message]:
        """Stop handing out messages; remove and return every message not yet started (a waiting group's head
        included), in group order."""
        self._closed = True
        for timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        unstarted = [m for queue in self._groups.values() for m in queue]
        for queue in self._groups.values():
            queue.clear()
        self._forget(len(unstarted))
        for _ in range(self._waiting_workers):
            self._ready.put_nowait(None)
        self._room.set()
        self._taken.set()
        return unstarted

    def held_messages(self) -> Iterator[Message]:
        """Every message in memory, being handled or waiting (for the visibility heartbeat)."""
        for run in self._busy.values():
            yield from run
        for queue in self._groups.values():
            yield from queue

    def _forget(self, n: int) -> None:
        self._held -= n
        if self._held + self._reserved < self.capacity:
            self._room.set()
