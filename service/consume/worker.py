"""Handle: take the head messages of ready groups, apply them in a transaction, hand the results to settle."""

from __future__ import annotations

import asyncio
import time

from ..config import Settings
from ..errors import Abandoned, Outcome, Sqs2pgError
from ..message import Message
from ..observe import traces
from .aio import unless
from .breaker import Breaker
from .deletes import DeleteBatcher
from .dispatcher import Dispatcher
from .ports import Database
from .settle import Settler


class Consumer:
    def __init__(
        self,
        settings: Settings,
        store: Database,
        dispatcher: Dispatcher,
        settler: Settler,
        deletes: DeleteBatcher,
        breaker: Breaker,
    ) -> None:
        self._settings = settings
        self._store = store
        self._dispatcher = dispatcher
        self._settler = settler
        self._deletes = deletes
        self._breaker = breaker
        self._stopping = asyncio.Event()
        self._deadline: float | None = None
        self._timeouts: set[asyncio.Timeout] = set()

    def set_deadline(self, deadline: float) -> None:
        """Shutdown: handling still running at ``deadline`` (loop time) is abandoned and released."""
        self._deadline = deadline
        self._stopping.set()
        for timeout in self._timeouts:
            timeout.reschedule(deadline)

    async def work(self) -> None:
        """One worker: take the heads of ready groups (several when more are ready than idle workers), apply
        them in one transaction, settle each; until the dispatcher closes."""
        while batch := await self._dispatcher.next_batch(self._settings.transaction_max_messages):
            try:
                await self._handle(batch)
            except asyncio.CancelledError:
                # Only past every shutdown timeout: whatever was not settled stays invisible at SQS until its
                # visibility timeout. Counted here so that the in-flight gauge stays true.
                self._settler.abandon(m for m in batch if self._dispatcher.is_busy(m))
                for message in batch:
                    self._dispatcher.done(message)
                raise
            if self._dispatcher.held == 0:
                self._deletes.flush_soon()  # nothing else in memory could join the pending deletes

    async def _handle(self, batch: list[Message]) -> None:
        pending = batch
        while pending:
            # The database is unreachable: hold the messages (the heartbeat keeps them invisible) rather than
            # fail them and spend one of their attempts; at shutdown, hand them back untouched.
            if self._breaker.is_open and not await unless(self._breaker.wait_closed(), self._stopping):
                rest = [m for head in pending for m in (head, *self._dispatcher.take_rest(head))]
                await self._settler.release(rest, "shutdown")
                for head in pending:
                    self._dispatcher.done(head)
                return
            traces.processing(pending)
            started = time.perf_counter()
            results: list[Outcome | Sqs2pgError]
            try:
                async with asyncio.timeout_at(self._deadline) as timeout:
                    self._timeouts.add(timeout)
                    try:
                        results = await self._store.apply_many(pending)  # classified: it raises nothing else
                    finally:
                        self._timeouts.discard(timeout)
            except TimeoutError:
                if not timeout.expired():
                    raise
                results = [Abandoned("the shutdown deadline cut its transaction short")] * len(pending)
            pending = await self._settler.settle(pending, results, time.perf_counter() - started)
