"""Poll: long-poll one queue and hand what arrives to the dispatcher, waiting while memory is full."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import logs
from .acknowledge import Acknowledger
from .aio import unless
from .breaker import Breaker
from .config import Settings
from .dispatcher import Dispatcher
from .errors import Sqs2pgError
from .message import Message
from .metrics import Metrics
from .retry import backoff_s
from .sqs import Sqs, queue_name

HOLDING_RECHECK_S = 1.0  # an empty poll while holding messages: poll again after this, or sooner (see run)


class Poller:
    def __init__(
        self,
        url: str,
        settings: Settings,
        sqs: Sqs,
        dispatcher: Dispatcher,
        acker: Acknowledger,
        metrics: Metrics,
        breaker: Breaker,
        stopping: asyncio.Event,
    ) -> None:
        self.url = url
        self.name = queue_name(url)
        self._settings = settings
        self._sqs = sqs
        self._dispatcher = dispatcher
        self._acker = acker
        self._metrics = metrics
        self._breaker = breaker
        self._stopping = stopping
        self.healthy = False  # the last receive succeeded

    async def run(self) -> None:
        failures = 0
        self._set_healthy(True)  # the queue was described; a failed receive says otherwise
        while not self._stopping.is_set():
            # (Each wait is skipped when it would return at once: unless() costs two tasks.)
            s, d = self._settings, self._dispatcher
            if not d.has_room(s.receive_batch_size) and not await unless(d.wait_for_room(s.receive_batch_size), self._stopping):
                break
            if not d.has_demand(s.max_concurrent_groups) and not await unless(d.wait_for_demand(s.max_concurrent_groups), self._stopping):
                break
            # While the database is unreachable, receiving would only burn the messages' receive counts.
            if self._breaker.is_open and not await unless(self._breaker.wait_closed(), self._stopping):
                break
            # While sqs2pg holds messages of this queue, their groups stay locked at SQS until its own deletes
            # or hand-backs land, and a long poll begun now need not notice those (moto's does not: it decides
            # which groups are locked when the poll starts, and waits out its wait). So it polls without waiting,
            # and when nothing comes, waits for one of its own messages to be let go (at most 1 s) before
            # polling again. Holding nothing, a long poll is the cheap way to wait. (A 1 s long poll while
            # holding was tried: 300 messages over 7 groups took 32 s to drain on plain moto instead of 3.4 s.
            # A poll without wait may miss messages on SQS, which samples its servers for it; that costs at
            # most the wait for the next let-go, and holding messages means one is coming.)
            holding = self._acker.holding(self.url) > 0
            let_go = self._acker.let_go_count(self.url)
            receive = asyncio.ensure_future(self._sqs.receive(self.url, wait_s=0 if holding else None))
            if holding:
                # A poll without wait returns at once: even at a stop it is let finish, and what it brings is
                # handed back, so nothing is left invisible.
                await _finish(receive)
            elif not await unless(receive, self._stopping):
                break  # stopping: the long poll was cut short (safe: see App._shutdown, step 2)
            try:
                raw = receive.result()
            except Sqs2pgError as exc:
                failures += 1
                self._set_healthy(False)
                delay = backoff_s(failures, 1.0, 30.0)
                logs.event(logging.WARNING, "receive failed", "receive", queue=self.name, error_kind=exc.kind, error=str(exc)[:300], retry_in_s=delay)
                await unless(asyncio.sleep(delay), self._stopping)
                continue
            failures = 0
            self._set_healthy(True)
            if raw:
                await self._accept(raw)
            elif holding:
                await unless(self._until_let_go(let_go), self._stopping)
        self._set_healthy(False)

    async def _until_let_go(self, since: int) -> None:
        """Until sqs2pg lets go of one of its messages of this queue; at most HOLDING_RECHECK_S, so that a
        message held for long (a slow handler) does not keep new groups waiting."""
        try:
            await asyncio.wait_for(self._acker.wait_let_go(self.url, since), HOLDING_RECHECK_S)
        except TimeoutError:
            pass

    async def _accept(self, raw: list[dict[str, Any]]) -> None:
        if not raw:
            return
        messages = []
        for r in raw:
            try:
                messages.append(Message.from_sqs(self.url, r, self._settings.visibility_timeout_s))
            except (KeyError, ValueError, TypeError) as exc:
                # A malformed response entry (no id or receipt handle): nothing to act on. SQS makes it
                # visible again after its visibility timeout, and its redrive policy bounds the repeats.
                logs.event(logging.ERROR, "malformed message from SQS skipped", "receive", queue=self.name, error=repr(exc)[:300])
        self._acker.hold(messages)
        self._metrics.received.labels(self.name).inc(len(messages))
        self._metrics.in_flight.labels(self.name).inc(len(messages))
        if self._stopping.is_set() or self._dispatcher.closed:
            await self._acker.release(messages, "shutdown")
            return
        for m in messages:
            self._dispatcher.add(m)

    def _set_healthy(self, value: bool) -> None:
        if value != self.healthy:
            self.healthy = value
            self._metrics.pollers_up.labels(self.name).inc(1 if value else -1)


async def _finish(task: asyncio.Future[Any]) -> None:
    """Wait for ``task``; if the waiter is cancelled (past every shutdown timeout), cancel it too."""
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
