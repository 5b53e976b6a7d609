"""Circuit breaker: when the database is unreachable, stop taking messages instead of burning their receives.

Without it, a 60 s Aurora failover with fast retries receives every waiting message again and again, and
SQS moves good messages to the dead-letter queue once they reach maxReceiveCount. With it:

- ``threshold`` consecutive *availability* failures (connection lost, failover, too many connections,
  timeouts) open the breaker. Other failures (a bad body, a serialization conflict) do not count.
- While open, pollers receive nothing and workers start nothing; messages already held stay held, and the
  heartbeat keeps them invisible, so their receive counts do not grow.
- A probe (``SELECT 1``) runs with exponential backoff; its first success closes the breaker. Failed probes
  are logged at ERROR with the reason (at most one line per ``LOG_EVERY_S``).
- The service starts with the breaker open when the database does not answer at start (a wrong DATABASE_URL,
  a database that does not exist yet, a cluster still booting): it says so at once and keeps trying.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..errors import AVAILABILITY_KINDS
from ..observe import logs
from ..observe.metrics import Metrics
from .policy import backoff_s

LOG_EVERY_S = 30.0  # at most one "still unavailable" line this often


class Breaker:
    def __init__(
        self,
        threshold: int,
        probe: Callable[[], Awaitable[str | None]],
        metrics: Metrics,
        max_probe_interval_s: float = 5.0,
    ) -> None:
        """``probe`` returns None when the database answers, else why it does not."""
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
            self.open(f"{self._failures} transactions in a row failed ({kind})")

    def open(self, reason: str) -> None:
        """Pause receiving and working until a probe succeeds."""
        if self.is_open:
            return
        self.opened_at = time.monotonic()
        self._closed.clear()
        self._opened.set()
        self._metrics.breaker_open.set(1)
        logs.event(logging.ERROR, "database unavailable: pausing", "breaker", state="open", error=reason[:300])

    async def run(self) -> None:
        """While open, probe the database with backoff; close on the first success."""
        while True:
            await self._opened.wait()
            attempt, logged_at = 0, time.monotonic()
            while (error := await self._probe()) is not None:
                attempt += 1
                if time.monotonic() - logged_at >= LOG_EVERY_S:
                    logged_at = time.monotonic()
                    logs.event(
                        logging.ERROR,
                        "database still unavailable",
                        "breaker",
                        state="open",
                        attempts=attempt,
                        down_s=round(logged_at - (self.opened_at or logged_at), 1),
                        error=error[:300],
                    )
                await asyncio.sleep(backoff_s(attempt, 0.5, self._max_probe_interval_s))
            down_s = time.monotonic() - (self.opened_at or time.monotonic())
            self._failures = 0
            self._opened.clear()
            self._closed.set()
            self._metrics.breaker_open.set(0)
            logs.event(logging.INFO, "database available: resuming", "breaker", state="closed", down_s=round(down_s, 3))
