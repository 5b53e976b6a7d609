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
            # A long poll is never cut short: the server may already have handed out messages (a receive
            # cannot be taken back), and we must see them to hand them back. It returns within
            # receive_wait_s; whatever it brings after the stop is released at once.
            if self._stopping.is_set():
                break
            receive = asyncio.ensure_future(self._sqs.receive(self.url))
            try:
                await asyncio.wait({receive})
            except asyncio.CancelledError:
                receive.cancel()  # only past every shutdown timeout: do not leave it running unowned
                raise
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
            await self._accept(raw)
        self._set_healthy(False)

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
