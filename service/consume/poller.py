"""Poll: receive from one queue and hand what arrives to the dispatcher, waiting while memory is full.

One Poller per queue runs up to ``SQS2PG_POLLERS_PER_QUEUE`` receive *lanes*, each a loop of one
ReceiveMessage at a time. How many run adapts: a receive that comes back full opens one more lane (while
memory allows), one that comes back empty closes one, down to a single lane. So an idle queue costs one
long poll, and a busy queue far from the service (every call a round trip of milliseconds) keeps several
receives in flight instead of waiting for each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..errors import Sqs2pgError
from ..message import Message
from ..observe import logs, traces
from ..observe.metrics import Metrics
from ..sqs.queues import QueueInfo
from .aio import unless
from .breaker import Breaker
from .dispatcher import Dispatcher
from .holdings import Holdings
from .order import OrderCheck
from .policy import backoff_s
from .ports import Queues
from .settle import Settler

HOLDING_RECHECK_S = 1.0  # an empty poll while holding messages: poll again after this, or sooner (see _lane)


class Poller:
    def __init__(
        self,
        info: QueueInfo,
        settings: Settings,
        sqs: Queues,
        dispatcher: Dispatcher,
        settler: Settler,
        holdings: Holdings,
        metrics: Metrics,
        breaker: Breaker,
        stopping: asyncio.Event,
    ) -> None:
        self.url = info.url
        self.name = info.name
        self._info = info
        self._settings = settings
        self._sqs = sqs
        self._dispatcher = dispatcher
        self._settler = settler
        self._holdings = holdings
        self._metrics = metrics
        self._breaker = breaker
        self._stopping = stopping
        # The queue was described (a Poller is made only then) and no receive has failed since the last success.
        self.healthy = True
        metrics.pollers_up.labels(self.name).set(1)
        self.lanes = 1  # how many lanes may receive now (1 .. _most_lanes())
        self.order = OrderCheck()  # the app sets a verdict a replica stored before
        # told of a new verdict (the app stores it for every replica and restart)
        self.on_judged: Callable[[str], None] = lambda verdict: None
        self._serialised = False  # a message arrived out of order: one receive at a time for good
        self._receiving = 0  # ReceiveMessage calls in flight
        self._starved = False  # the last receive while holding messages came back short (see _lane)
        self._lanes_changed = asyncio.Event()
        metrics.receive_lanes.labels(self.name).set(self.lanes)

    def runners(self) -> list[Any]:
        """The lanes, as coroutines for the app's TaskGroup (lane 0 always runs; the others when opened)."""
        return [self._lane(i) for i in range(self._settings.pollers_per_queue)]

    async def _lane(self, index: int) -> None:
        failures = 0
        s, d = self._settings, self._dispatcher
        while not self._stopping.is_set():
            # (Each wait is skipped when it would return at once: unless() costs two tasks.)
            if index >= self.lanes and not await unless(self._opened(index), self._stopping):
                break
            if not d.has_room(s.receive_batch_size) and not await unless(
                d.wait_for_room(s.receive_batch_size), self._stopping
            ):
                break
            if not d.has_demand(s.max_concurrent_groups) and not await unless(
                d.wait_for_demand(s.max_concurrent_groups), self._stopping
            ):
                break
            # While the database is unreachable, receiving would only burn the messages' receive counts.
            if self._breaker.is_open and not await unless(self._breaker.wait_closed(), self._stopping):
                break
            if index >= self.lanes or not d.has_room(s.receive_batch_size):
                continue  # closed, or another lane took the room, while this one waited
            # While sqs2pg holds messages of this queue, their groups stay locked at SQS until its own deletes
            # or hand-backs land, and a long poll begun now need not notice those (moto's does not: it decides
            # which groups are locked when the poll starts, and waits out its wait). So it polls without waiting,
            # and when nothing comes, waits for one of its own messages to be let go (at most 1 s) before
            # polling again. Holding nothing, a long poll is the cheap way to wait. (A 1 s long poll while
            # holding was tried: 300 messages over 7 groups took 32 s to drain on plain moto instead of 3.4 s.
            # A poll without wait may miss messages on SQS, which samples its servers for it; that costs at
            # most the wait for the next let-go, and holding messages means one is coming.)
            # (A receive another lane has in flight counts as holding: what it brings locks groups the moment the
            # server hands them out, before this lane could see them.)
            holding = self._holdings.holding(self.url) > 0 or self._receiving > 0
            # Starved (the last receive while holding came back short): what comes next is mostly what sqs2pg's
            # own deletes unlock, so each lane polls once one of them landed, one lane per let-go; polls that
            # all went at once would come back empty or split one batch. A full receive made without that
            # wait shows more is waiting, and lanes poll freely again.
            waited = holding and self._starved
            if waited:
                await unless(self._until_let_go(), self._stopping)
                if self._stopping.is_set():
                    break
                holding = self._holdings.holding(self.url) > 0 or self._receiving > 0
            # Room for a full batch is reserved before the call, so that lanes in flight together cannot take
            # more than SQS2PG_MAX_IN_MEMORY_MESSAGES between them.
            d.reserve(s.receive_batch_size)
            self._receiving += 1
            self._metrics.receives_in_flight.labels(self.name).inc()
            try:
                # Even at a stop a receive is let finish (a long poll within receive_wait_s, SQS's answer within
                # sqs/client.py's bound): cut short, the server would still hand what it takes to a connection
                # nobody reads, invisible until its visibility timeout. What it brings at a stop is handed back.
                started_ns = time.time_ns()
                receive = asyncio.ensure_future(self._sqs.receive(self.url, wait_s=0 if holding else None))
                await _finish(receive)
                try:
                    raw = receive.result()
                except Sqs2pgError as exc:
                    traces.received(self.name, [], started_ns, exc)
                    failures += 1
                    self._set_healthy(False)
                    delay = backoff_s(failures, 1.0, 30.0)
                    # SQS not answering is said once, by the client (ERROR, then INFO when it answers again)
                    quiet = exc.kind in ("sqs_unavailable", "sqs_throttled") and failures > 1
                    logs.event(
                        logging.DEBUG if quiet else logging.WARNING,
                        "receive failed",
                        "receive",
                        queue=self.name,
                        lane=index,
                        error_kind=exc.kind,
                        error=str(exc)[:300],
                        retry_in_s=round(delay, 3),
                    )
                    await unless(asyncio.sleep(delay), self._stopping)
                    continue
                failures = 0
                self._set_healthy(True)
                await self._accept(raw, started_ns)
            finally:
                d.unreserve(s.receive_batch_size)
                self._receiving -= 1
                self._metrics.receives_in_flight.labels(self.name).dec()
            self._adapt(len(raw))
            if len(raw) < s.receive_batch_size:
                self._starved = holding
            elif not waited:
                self._starved = False

    def _judged(self, verdict: str) -> None:
        """The server's numbers were judged (OrderCheck): receives may overlap, or stay one at a time."""
        self.on_judged(verdict)
        if verdict == "sequence":
            logs.event(logging.INFO, "SequenceNumbers in order: receives may overlap", "receive", queue=self.name)
            return
        self.lanes = 1
        self._metrics.receive_lanes.labels(self.name).set(1)
        logs.event(
            logging.WARNING,
            "this SQS server's SequenceNumbers are not in FIFO order: receiving one at a time",
            "receive",
            queue=self.name,
            hint="a group's order then rests on the server's group lock, checked by SentTimestamp; stock moto numbers "
            "messages at random (use `sqs2pg local-sqs`, or SQS)",
        )

    def serialise(self) -> None:
        """The server handed a group's messages out of order to overlapping receives (settle.py saw a message older
        than what its group applied): from now on one receive at a time on this queue, said once."""
        if self._serialised:
            return
        self._serialised = True
        self.lanes = 1
        self._metrics.receive_lanes.labels(self.name).set(1)
        logs.event(
            logging.WARNING,
            "messages of a group arrived out of order: receiving one at a time from now on",
            "receive",
            queue=self.name,
            hint="the SQS server does not keep FIFO order when receives overlap (stock moto does this; SQS and "
            "LocalStack do not): the older message was dead-lettered as out_of_order, never applied; use a server "
            "that keeps FIFO order (`sqs2pg local-sqs`), then redrive it with `sqs2pg dlq redrive`",
        )

    def _most_lanes(self) -> int:
        """Receives overlap only where the server's numbers were seen in order, and it never broke a group's order."""
        return self._settings.pollers_per_queue if self.order.verdict == "sequence" and not self._serialised else 1

    def _adapt(self, received: int) -> None:
        """A full batch: there is more waiting, open a lane. An empty one: close a lane (never the first)."""
        most = self._most_lanes()
        if received >= self._settings.receive_batch_size and self.lanes < most:
            self.lanes += 1
        elif received == 0 and self.lanes > 1:
            self.lanes -= 1
        else:
            return
        self._metrics.receive_lanes.labels(self.name).set(self.lanes)
        event, self._lanes_changed = self._lanes_changed, asyncio.Event()
        event.set()

    async def _opened(self, index: int) -> None:
        while index >= self.lanes:
            await self._lanes_changed.wait()

    async def _until_let_go(self) -> None:
        """Until sqs2pg lets go of some of its messages of this queue; at most HOLDING_RECHECK_S, so that a
        message held for long (a slow handler) does not keep new groups waiting."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._holdings.next_let_go(self.url), HOLDING_RECHECK_S)

    async def _accept(self, raw: list[dict[str, Any]], started_ns: int) -> None:
        if not raw:
            return
        messages = []
        for r in raw:
            try:
                messages.append(
                    Message.from_sqs(
                        self.url, r, self._settings.visibility_timeout_s, self._settings.envelope, self._info.created
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                # A malformed response entry (no id or receipt handle): nothing to act on. SQS makes it
                # visible again after its visibility timeout, and its redrive policy bounds the repeats.
                logs.event(
                    logging.ERROR,
                    "malformed message from SQS skipped",
                    "receive",
                    queue=self.name,
                    error=repr(exc)[:300],
                )
        traces.received(self.name, messages, started_ns)
        before = self.order.verdict
        if (verdict := self.order.observe(messages)) != before:
            self._judged(verdict)
        self._settler.received(messages)
        if self._stopping.is_set() or self._dispatcher.closed:
            await self._settler.release(messages, "shutdown")
            return
        for m in messages:
            self._dispatcher.add(m)

    def _set_healthy(self, value: bool) -> None:
        if value != self.healthy:
            self.healthy = value
            self._metrics.pollers_up.labels(self.name).set(1 if value else 0)


async def _finish(task: asyncio.Future[Any]) -> None:
    """Wait for ``task``; if the waiter is cancelled (past every shutdown timeout), cancel it too."""
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
