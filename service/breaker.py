"""Circuit breaker: when the database is unreachable, stop taking messages instead of burning their receives.

Without it, a 60 s Aurora failover with fast retries receives every waiting message again and again, and
SQS moves good messages to the dead-letter queue once they reach maxReceiveCount. With it:

- ``threshold`` consecutive *availability* failures (connection lost, failover, too many connections,
  timeouts) open the breaker. Other failures (a bad body, a serialization conflict) do not count.
- While open, pollers receive nothing and workers start nothing; messages already held stay held, and the
  heartbeat keeps them invisible, so their receive counts do not grow.
- A probe (``SELECT 1``) runs with exponential backoff; its first success closes the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from . import logs
from .errors import AVAILABILITY_KINDS
from .metrics import Metrics
from .retry import backoff_s



class Breaker:
    def __init__(
        self, threshold: int, probe: Callable[[], Awaitable[bool]], metrics: Metrics, max_probe_interval_s: float = 5.0
    ) -> None:
        self._threshold = threshold
        self._probe = probe
        self._metrics = metrics
        self._max_probe_interval_s = max_probe_interval_s
        self._failures = 0
        self._closed = asyncio.Event()
        self._closed.set()
        self._opened = asyncio.Event()
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def success(self) -> None:
        self._failures = 0

    def failure(self, kind: str) -> None:
        """Count a failed transaction; open the breaker after ``threshold`` availability failures in a row."""
        if kind not in AVAILABILITY_KINDS:
            return
        self._failures += 1
        if self._failures >= self._threshold and not self.is_open:
            self.opened_at = time.monotonic()
            self._closed.clear()
            self._opened.set()
            self._metrics.breaker_open.set(1)
            logs.event(logging.WARNING, "database unavailable: pausing", "breaker", state="open", failures=self._failures)

    async def run(self) -> None:
        """While open, probe the database with backoff; close on the first success."""
        while True:
            await self._opened.wait()
            attempt = 0
            while not await self._probe():
                attempt += 1
                await asyncio.sleep(backoff_s(attempt, 0.5, self._max_probe_interval_s))
            down_s = time.monotonic() - (self.opened_at or time.monotonic())
            self._failures = 0
            self._opened.clear()
            self._closed.set()
            self._metrics.breaker_open.set(0)
            logs.event(logging.INFO, "database available: resuming", "breaker", state="closed", down_s=round(down_s, 3))
