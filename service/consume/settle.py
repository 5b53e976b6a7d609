"""Settle: the one place a message leaves sqs2pg's hands, and the one place that is counted.

A transaction's result becomes a decision (policy.py, pure); settling applies it and does the bookkeeping
once: the breaker and the database-error count, the SQS call (a batched delete, a visibility change, a copy
to the dead-letter queue), the outcome metric and its log line with the same word, the in-flight gauge,
and the dispatcher (the group's next message may go). Every message received is settled exactly once,
under exactly one outcome. Each step is safe to repeat after a crash: idempotency recognises a commit whose
delete never happened, and the dead-letter copy's deduplication id drops a second copy.

What happens to a message whose transaction failed:
- a permanent failure (a bad body, a constraint, the handler's own exception): recorded as dead-lettered
  in the database, copied to the dead-letter queue with the reason, then deleted; if the record or the copy
  fails, it is retried instead. A redelivery of it is never applied (store.py), only a redrive is;
- a transient failure: left in the queue, invisible for a backoff (policy.backoff_s); the messages of its
  group that sqs2pg already holds are handed back behind it, so nothing overtakes it;
- the database failed it and the circuit is open: it stays at the head of its group, held, and is tried
  again in place once the database answers (consumer.py), spending no receive;
- the shutdown deadline cut it short: handed back with its group's rest; idempotency decides on return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from ..config import Settings
from ..errors import Outcome, Sqs2pgError, classify, from_database
from ..message import Message
from ..observe import logs
from ..observe.metrics import Metrics
from ..sqs.client import QueueInfo, chunks
from .breaker import Breaker
from .deletes import DeleteBatcher
from .dispatcher import Dispatcher
from .holdings import Holdings
from .policy import Decision, backoff_s, decide
from .ports import Database, Queues

_DELETED = (Outcome.COMMITTED, Outcome.DUPLICATE)


class Settler:
    def __init__(
        self,
        settings: Settings,
        sqs: Queues,
        queues: dict[str, QueueInfo],
        dispatcher: Dispatcher,
        breaker: Breaker,
        holdings: Holdings,
        deletes: DeleteBatcher,
        metrics: Metrics,
        store: Database,
    ) -> None:
        self._settings = settings
        self._store = store
        self._sqs = sqs
        self._queues = queues
        self._dispatcher = dispatcher
        self._breaker = breaker
        self._holdings = holdings
        self._deletes = deletes
        self._metrics = metrics
        # Set while no heartbeat extension is out: a hand-back waits for it, so it lands after the extension.
        self._no_extension_out = asyncio.Event()
        self._no_extension_out.set()

    def received(self, messages: list[Message]) -> None:
        """A receive brought these: from now on they are held, until settled."""
        if messages:
            self._holdings.hold(messages)
            self._metrics.received.labels(messages[0].queue_name).inc(len(messages))
            self._metrics.in_flight.labels(messages[0].queue_name).inc(len(messages))

    async def settle(
        self, batch: list[Message], results: list[Outcome | Exception], handled_s: float, abandoned: bool
    ) -> list[Message]:
        """Apply each message's result; returns the messages to hold and try again in place (circuit open)."""
        s = self._settings
        decided: list[tuple[Message, Decision | None]] = []
        for message, result in zip(batch, results, strict=True):
            circuit_open = False
            if isinstance(result, Outcome):
                self._breaker.success()
            elif from_database(result) and not abandoned:
                kind = classify(result).kind
                self._metrics.db_errors.labels(message.queue_name, kind).inc()
                self._breaker.failure(kind)
                circuit_open = self._breaker.is_open
            decision = decide(
                result,
                message.receive_count,
                abandoned=abandoned,
                circuit_open=circuit_open,
                base_s=s.retry_base_s,
                cap_s=s.retry_max_s,
            )
            decided.append((message, decision))
        # Deletes first, with no await before them: a cancellation cannot come between a commit and its delete.
        for message, decision in decided:
            if decision is not None and decision.outcome in _DELETED:
                self._deletes.add(message)
                self._metrics.handle_seconds.labels(message.queue_name).observe(handled_s)
                if decision.outcome is Outcome.COMMITTED and message.sent_timestamp_ms:
                    age_s = max(0.0, time.time() - message.sent_timestamp_ms / 1000)
                    self._metrics.age_seconds.labels(message.queue_name).observe(age_s)
                self._record(message, decision.outcome, logging.DEBUG)
                self._dispatcher.done(message)  # its group's next message may be handed out now
        held = []
        for message, decision in decided:
            if decision is None:
                held.append(message)
            elif decision.outcome not in _DELETED:
                await self._apply(message, decision)
                self._dispatcher.done(message)
        return held

    async def _apply(self, message: Message, decision: Decision) -> None:
        if decision.outcome is Outcome.RELEASED:  # the shutdown deadline cut it short
            await self.release([message, *self._dispatcher.take_rest(message)], "shutdown deadline")
            return
        if decision.outcome is Outcome.DEAD_LETTERED:
            assert decision.error is not None
            try:
                await self._dead_letter(message, decision.error)
                return
            except Sqs2pgError as exc:
                # Could not move it: keep it (and its group, for order) and try again later.
                decision = Decision(Outcome.RETRIED, self._backoff(message), error=exc)
        assert decision.error is not None
        await self._retry(message, self._dispatcher.take_rest(message), decision.visibility_s, decision.error)

    async def release(self, messages: Iterable[Message], reason: str) -> None:
        """RELEASED: hand messages back unprocessed with visibility 0, so their groups are not blocked."""
        messages = list(messages)
        if not messages:
            return
        for url in {m.queue_url for m in messages}:
            self._holdings.letting_go(url)
        try:
            await self._hand_back([(m, 0) for m in messages])
        finally:
            # Handed back whatever the call's fate: if it failed, or was cancelled at shutdown, each message comes
            # back at the end of its own visibility timeout. Counted here, so the in-flight gauge stays true.
            self._holdings.let_go(messages)
            for m in messages:
                self._record(m, Outcome.RELEASED, logging.INFO, visibility_s=0, reason=reason)

    def abandon(self, messages: Iterable[Message]) -> None:
        """A worker was cancelled past every shutdown timeout while holding these: they stay invisible at SQS
        until their visibility timeout, then come back (a commit that happened is a duplicate then)."""
        for m in messages:
            if m.handed_back:
                continue  # counted as released or retried already, though its call was cut short
            self._metrics.in_flight.labels(m.queue_name).dec()
            self._holdings.let_go([m])
            logs.event(
                logging.WARNING,
                "message abandoned at shutdown: it comes back after its visibility timeout",
                "settle",
                **m.log_fields(),
            )

    async def _retry(self, message: Message, behind: list[Message], visibility_s: int, error: Sqs2pgError) -> None:
        """RETRIED: leave it in the queue for visibility_s; hand back the messages held behind it.

        The messages behind it get visibility 0, not the backoff: SQS hands out nothing of a FIFO group while
        one of its messages is in flight, so the retried head alone holds the group, and when it comes back
        they come back after it, in order. (Giving them all the same backoff is not safer: moto's server, for
        one, then returns the *last* of them first.) The head's change is sent first, in the same batch.
        """
        self._holdings.letting_go(message.queue_url)
        try:
            await self._hand_back([(message, visibility_s), *((m, 0) for m in behind)])
        finally:  # as in release
            self._holdings.let_go([message, *behind])
            self._record(message, Outcome.RETRIED, logging.WARNING, error=error, visibility_s=visibility_s)
            for m in behind:
                self._record(m, Outcome.RELEASED, logging.INFO, visibility_s=0, reason="behind a retried message")

    async def _dead_letter(self, message: Message, error: Sqs2pgError) -> None:
        """DEAD_LETTERED: record it in the database with the reason, copy it to the queue's DLQ, then delete it.
        Raises (and the message waits in the queue) if the record or the copy fails.

        The record comes first: if the delete is then lost (or the process dies), the redelivered message is
        recognised (store.py) and finished, never applied after the rest of its group."""
        recorded = await self._store.record_dead_letter(message, error)
        dlq_url = self._queues[message.queue_url].dlq_url
        # The body, group and key must get there; the reason too, unless the body leaves no room (sqs.py).
        copy = await self._sqs.send_to_dlq(dlq_url, message, error)
        if recorded:
            await self._store.dead_letter_copied(message)
        # A crash between the send and the delete redelivers it; the DLQ drops the second copy (same dedup id).
        self._deletes.add(message)
        fields = {} if copy == "full" else {"dlq_copy": copy}  # what fitted beside a body near the size limit
        self._record(message, Outcome.DEAD_LETTERED, logging.ERROR, error=error, **fields)

    async def extend(self, messages: list[Message], visibility_s: int) -> None:
        """Heartbeat: keep messages sqs2pg still holds invisible to other consumers. A message being handed back
        is skipped, and a hand-back that starts while the extension is out waits for it (_hand_back): an
        extension never lands after a release or a retry and hides the message again. (If the heartbeat gives
        up on a hung extension, the request may still land later: then the message comes back one visibility
        timeout late, never out of order, since its group stays locked meanwhile.)"""
        messages = [m for m in messages if not m.handed_back]
        if not messages:
            return
        now = time.monotonic()
        self._no_extension_out.clear()  # no await since the filter above: a hand-back sees one or the other
        try:
            failed = await self._change_visibility([(m, visibility_s) for m in messages])
        finally:
            self._no_extension_out.set()
        for m in messages:
            if m not in failed:
                m.visible_until = now + visibility_s

    async def _hand_back(self, entries: list[tuple[Message, int]]) -> None:
        """Release or retry: the new visibility, sent after any heartbeat extension that is out."""
        for m, _ in entries:
            m.handed_back = True
        await self._no_extension_out.wait()
        await self._change_visibility(entries)

    async def _change_visibility(self, entries: list[tuple[Message, int]]) -> set[Message]:
        """ChangeMessageVisibilityBatch for (message, seconds) pairs, order kept; returns the ones that failed."""
        by_queue: dict[str, list[tuple[Message, int]]] = defaultdict(list)
        for entry in entries:
            by_queue[entry[0].queue_url].append(entry)
        batches = [(url, batch) for url, es in by_queue.items() for batch in chunks(es)]
        results = await asyncio.gather(
            *(self._sqs.change_visibility(url, batch) for url, batch in batches), return_exceptions=True
        )
        failed: set[Message] = set()
        for (_, batch), result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                batch_failed, reason = [m for m, _ in batch], str(result)
            else:
                batch_failed, reason = [m for m, _ in result], "; ".join(r for _, r in result)
            if batch_failed:
                failed.update(batch_failed)
                # Not fatal: the message comes back when its current visibility ends, and is then applied or
                # recognised as a duplicate.
                logs.event(
                    logging.WARNING,
                    "visibility change failed",
                    "change_visibility",
                    failed=len(batch_failed),
                    error=reason[:300],
                )
        return failed

    def _backoff(self, message: Message) -> int:
        return backoff_s(message.receive_count, self._settings.retry_base_s, self._settings.retry_max_s)

    def _record(
        self, message: Message, outcome: Outcome, level: int, error: Sqs2pgError | None = None, **fields: object
    ) -> None:
        self._metrics.messages.labels(message.queue_name, outcome.value).inc()
        self._metrics.in_flight.labels(message.queue_name).dec()
        if error is not None:
            fields["error_kind"] = error.kind
            fields["error"] = str(error)[:300]
        logs.event(level, f"message {outcome.value}", "settle", outcome=outcome.value, **message.log_fields(), **fields)
