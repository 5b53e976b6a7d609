"""Handle: take the head messages of ready groups, apply them in a transaction, decide, acknowledge."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from .acknowledge import Acknowledger
from .aio import unless
from .breaker import Breaker
from .config import Settings
from .dispatcher import Dispatcher
from .errors import DatabaseUnavailable, Sqs2pgError, classify
from .message import Message
from .metrics import Metrics
from .retry import Decision, Outcome, backoff_s, decide
from .store import NotAttempted, Store

# Failures of the database itself (as opposed to the handler rejecting a body) counted in sqs2pg_db_errors.
_DB_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError, DatabaseUnavailable)


class Consumer:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        dispatcher: Dispatcher,
        acker: Acknowledger,
        metrics: Metrics,
        breaker: Breaker,
    ) -> None:
        self._settings = settings
        self._store = store
        self._dispatcher = dispatcher
        self._acker = acker
        self._metrics = metrics
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
            unsettled = set(batch)
            try:
                await self._handle(batch, unsettled)
            finally:
                for message in unsettled:  # only if _handle was cancelled part-way
                    self._dispatcher.done(message)
            if self._dispatcher.held == 0:
                self._acker.flush_soon()  # nothing else in memory could join the pending deletes

    async def _handle(self, batch: list[Message], unsettled: set[Message]) -> None:
        pending = batch
        while pending:
            # The database is unreachable: hold the messages (the heartbeat keeps them invisible) rather than
            # fail them and spend one of their receives; at shutdown, hand them back untouched.
            if self._breaker.is_open and not await unless(self._breaker.wait_closed(), self._stopping):
                await self._acker.release([m for head in pending for m in (head, *self._dispatcher.take_rest(head))], "shutdown")
                for head in pending:
                    self._done(head, unsettled)
                return
            started = time.perf_counter()
            abandoned = False
            try:
                async with asyncio.timeout_at(self._deadline) as timeout:
                    self._timeouts.add(timeout)
                    try:
                        results = await self._store.apply_many(pending)
                    finally:
                        self._timeouts.discard(timeout)
            except Exception as exc:  # noqa: BLE001 - classified in _decide, never swallowed
                abandoned = self._deadline is not None and timeout.expired()
                results = [exc] * len(pending)
            handled_s = time.perf_counter() - started
            decided = [(m, self._decide(m, r, abandoned)) for m, r in zip(pending, results, strict=True)]
            # Deletes are queued first, with no await before them: a cancellation cannot separate a commit
            # from its delete. Then the rest (dead-letter copies, visibility changes) one by one.
            decided.sort(key=lambda md: md[1] is None or md[1].outcome not in (Outcome.COMMITTED, Outcome.DUPLICATE))
            pending = []
            for message, decision in decided:
                if decision is None:
                    pending.append(message)  # held at the head of its group, tried again once the database answers
                else:
                    await self._settle(message, decision, handled_s, abandoned)
                    self._done(message, unsettled)

    def _done(self, message: Message, unsettled: set[Message]) -> None:
        """Settled: its group's next message may be handed out now, without waiting for the rest of the batch."""
        unsettled.discard(message)
        self._dispatcher.done(message)

    def _decide(self, message: Message, result: Outcome | Exception, abandoned: bool) -> Decision | None:
        """What to do with a message given what its transaction did; None to hold it (circuit open, or not
        tried at all because the database failed the messages before it)."""
        if isinstance(result, Outcome):
            self._breaker.success()
            return Decision(result)
        if isinstance(result, NotAttempted) and not abandoned:
            return None
        error = classify(result)
        if isinstance(result, _DB_FAILURES) and not abandoned:
            self._metrics.db_errors.labels(message.queue_name, error.kind).inc()
            self._breaker.failure(error.kind)
            if self._breaker.is_open:
                return None
        return decide(error, message.receive_count, self._settings.retry_base_s, self._settings.retry_max_s)

    async def _settle(self, message: Message, decision: Decision, handled_s: float, abandoned: bool) -> None:
        # Every step here is safe to repeat after a crash (see store.py and Acknowledger.dead_letter).
        if abandoned:
            # Shutdown deadline: the commit may or may not have happened; idempotency decides on redelivery.
            await self._acker.release([message, *self._dispatcher.take_rest(message)], "shutdown deadline")
            return
        if decision.outcome in (Outcome.COMMITTED, Outcome.DUPLICATE):
            self._acker.delete(message, decision.outcome, handled_s)
            return
        if decision.outcome is Outcome.DEAD_LETTERED:
            assert decision.error is not None
            try:
                await self._acker.dead_letter(message, decision.error)
                return
            except Sqs2pgError as exc:
                # Could not move it: keep it (and its group, for order) and try again later.
                decision = Decision(Outcome.RETRIED, self._backoff(message), error=exc)
        assert decision.error is not None
        await self._acker.retry(message, self._dispatcher.take_rest(message), decision.visibility_s, decision.error)

    def _backoff(self, message: Message) -> int:
        return backoff_s(message.receive_count, self._settings.retry_base_s, self._settings.retry_max_s)
