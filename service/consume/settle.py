"""Settle: the one place a message leaves sqs2pg's hands, and the one place that is counted.

A transaction's result (an outcome, or an error the store already classified) becomes a decision
(policy.decide, pure); settling applies it and does the bookkeeping once: the breaker and the database-error
count, the SQS call (a batched delete, a visibility change, a copy to the dead-letter queue), the outcome
metric, its log line and its trace span with the same word, the in-flight gauge, and the dispatcher (the
group's next message may go, or the group waits). Every message received ends exactly once, under one final
outcome (committed, duplicate, dead_lettered, released); each transient failure before that is counted as
retried. Each step is safe to repeat after a crash: idempotency recognises a commit whose delete never
happened, and the dead-letter copy's deduplication id drops a second copy.

What happens to a message whose transaction failed (policy.decide says which):
- a permanent failure (a bad body, a constraint, the handler's own exception, out of order): recorded as
  dead-lettered in the database, copied to the dead-letter queue with the reason, then deleted; if the record
  or the copy fails, it is tried again in place. A redelivery of it is never applied (store.py), only a
  redrive is;
- a transient failure: kept in memory at the head of its group and tried again after a backoff, its group's
  later messages held behind it (the heartbeat keeps them all invisible, so no receive count moves); its group
  holds no worker meanwhile. After SQS2PG_RETRY_MAX_ATTEMPTS, dead-lettered as retries_exhausted;
- not tried, because an earlier message of its group failed in the same transaction (a run): put back in its
  group behind that one, whatever becomes of it;
- the database failed it and the circuit is open: held at the head of its group and tried again in place once
  the database answers (worker.py), spending nothing;
- the shutdown deadline cut it short: handed back with its group's rest; idempotency decides on return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ..config import Settings
from ..errors import DeadLetterFailed, Outcome, OutOfOrder, Sqs2pgError
from ..message import Message, queue_name
from ..observe import logs, traces
from ..observe.metrics import Metrics
from ..sqs.client import batches_by_queue
from ..sqs.queues import QueueInfo
from .breaker import Breaker
from .deletes import DeleteBatcher
from .dispatcher import Dispatcher
from .holdings import Holdings
from .policy import Decision, Retries, decide
from .ports import Database, Queues


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
        self._retries = Retries(settings.retry_base_s, settings.retry_max_s, settings.retry_max_attempts)
        # told when a queue's server delivered a group out of order (the app makes its poller receive one at a time)
        self.on_inversion: Callable[[str], None] = lambda url: None
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
        self, batch: list[Message], results: list[Outcome | Sqs2pgError], handled_s: float
    ) -> list[Message]:
        """Decide for every message, then act on each decision; returns the messages to hold and try again in
        place at once (the circuit is open, or they were never tried)."""
        decided = [(m, self._decide(m, r)) for m, r in zip(batch, results, strict=True)]
        # Deletes first, with no await before them: a cancellation cannot come between a commit and its delete.
        for message, decision in decided:
            if decision.outcome in (Outcome.COMMITTED, Outcome.DUPLICATE):
                self._deleted(message, decision.outcome, handled_s)
        # Then what was not tried behind a failed message of its group goes back behind it, before that one is
        # retried, held, dead-lettered or released (each of which sees them in its group).
        behind = [m for m, decision in decided if decision.behind]
        traces.not_tried(behind)
        self._dispatcher.put_back(behind)
        held = []
        for message, decision in decided:
            if decision.behind:
                continue
            match decision.outcome:
                case None:
                    held.append(message)
                case Outcome.RETRIED:
                    self._retry_in_place(message, decision)
                case Outcome.DEAD_LETTERED:
                    await self._dead_letter(message, decision)
                case Outcome.RELEASED:  # the shutdown deadline cut it short
                    await self.release([message, *self._dispatcher.take_rest(message)], "shutdown deadline")
                    self._dispatcher.done(message)
        return held

    def _decide(self, message: Message, result: Outcome | Sqs2pgError) -> Decision:
        """policy.decide, with the database's failures counted first (the breaker, sqs2pg_db_errors)."""
        if isinstance(result, Outcome):
            self._breaker.success()
        elif result.from_database:
            self._metrics.db_errors.labels(message.queue_name, result.kind).inc()
            self._breaker.failure(result.kind)
        if isinstance(result, OutOfOrder):
            self._inversion(message, result)
        return decide(result, message.attempts, self._retries, circuit_open=self._breaker.is_open)

    def _deleted(self, message: Message, outcome: Outcome, handled_s: float) -> None:
        """COMMITTED or DUPLICATE: its delete is queued (batched), and its group's next message may go."""
        self._deletes.add(message)
        self._metrics.handle_seconds.labels(message.queue_name).observe(handled_s)
        if outcome is Outcome.COMMITTED and message.sent_timestamp_ms:
            age_s = max(0.0, time.time() - message.sent_timestamp_ms / 1000)
            self._metrics.age_seconds.labels(message.queue_name).observe(age_s)
        self._record(message, outcome, logging.DEBUG)
        self._dispatcher.done(message)

    def _retry_in_place(self, message: Message, decision: Decision) -> None:
        """RETRIED: the message stays at the head of its group, which waits out the backoff holding no worker."""
        message.attempts += 1
        self._dispatcher.retry_later(message, decision.delay_s)
        self._record(
            message,
            Outcome.RETRIED,
            logging.WARNING,
            decision.error,
            settled=False,
            attempt=message.attempts,
            retry_in_s=round(decision.delay_s, 3),
        )

    def _inversion(self, message: Message, error: OutOfOrder) -> None:
        """A message older than what its group already applied: counted, and the queue's receives serialised
        (once: the poller then keeps one receive in flight)."""
        self._metrics.order_inversions.labels(message.queue_name).inc()
        self.on_inversion(message.queue_url)

    async def release(self, messages: Iterable[Message], reason: str) -> None:
        """RELEASED: hand messages back unprocessed with visibility 0, so their groups are not blocked."""
        messages = list(messages)
        if not messages:
            return
        for url in {m.queue_url for m in messages}:
            self._holdings.letting_go(url)
        started_ns, failed = time.time_ns(), set(messages)
        try:
            failed = await self._hand_back([(m, 0) for m in messages])
        finally:
            # Handed back whatever the call's fate: if it failed, or was cancelled at shutdown, each message comes
            # back at the end of its own visibility timeout. Counted here, so the in-flight gauge stays true.
            self._holdings.let_go(messages)
            for m in messages:
                self._record(m, Outcome.RELEASED, logging.INFO, visibility_s=0, reason=reason)
            traces.settled("release", messages, started_ns, dict.fromkeys(failed, "not handed back"))

    def abandon(self, messages: Iterable[Message]) -> None:
        """A worker was cancelled past every shutdown timeout while holding these: they stay invisible at SQS
        until their visibility timeout, then come back (a commit that happened is a duplicate then)."""
        for m in messages:
            if m.handed_back:
                continue  # counted as released already, though its call was cut short
            self._metrics.in_flight.labels(m.queue_name).dec()
            self._holdings.let_go([m])
            logs.event(
                logging.WARNING,
                "message abandoned at shutdown: it comes back after its visibility timeout",
                "settle",
                **m.log_fields(),
            )

    async def _dead_letter(self, message: Message, decision: Decision) -> None:
        """DEAD_LETTERED: record it in the database with the reason, copy it to the queue's DLQ, then delete it. If
        the record or the copy fails, it is decided again (policy: tried again in place, after a backoff).

        The record comes first: if the delete is then lost (or the process dies), the redelivered message is
        recognised (store.py) and finished, never applied after the rest of its group."""
        error = decision.error
        assert error is not None
        try:
            recorded = await self._store.record_dead_letter(message, error)
            dlq_url = self._queues[message.queue_url].dlq_url
            # The body, group and key must get there; the reason too, unless the body leaves no room. The copy
            # carries the trace context, so a redrive joins the write's trace.
            with traces.sending(message, queue_name(dlq_url)) as trace_attributes:
                copy, left_out = await self._sqs.send_to_dlq(dlq_url, message, error, trace_attributes)
        except Sqs2pgError as exc:
            failed = DeadLetterFailed(f"could not dead-letter it ({exc.kind}: {exc}); the reason: {error}")
            failed.from_database = exc.from_database
            self._retry_in_place(message, self._decide(message, failed))
            return
        if recorded:
            await self._store.dead_letter_copied(message)
        # A crash between the send and the delete redelivers it; the DLQ drops the second copy (same dedup id).
        self._deletes.add(message)
        if copy == "full" and not left_out:
            self._record(message, Outcome.DEAD_LETTERED, logging.ERROR, error)
        else:  # what fitted beside a body near the size limit, or past SQS's 10 attributes (the record keeps them)
            self._record(message, Outcome.DEAD_LETTERED, logging.ERROR, error, dlq_copy=copy, left_out=left_out)
        self._dispatcher.done(message)

    async def extend(self, messages: list[Message], visibility_s: int) -> None:
        """Heartbeat: keep messages sqs2pg still holds invisible to other consumers. A message being handed back
        is skipped, and a hand-back that starts while the extension is out waits for it (_hand_back): an
        extension never lands after a release and hides the message again. (If the heartbeat gives
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

    async def _hand_back(self, entries: list[tuple[Message, int]]) -> set[Message]:
        """A hand-back: the new visibility, sent after any heartbeat extension that is out; returns the messages
        whose change failed."""
        for m, _ in entries:
            m.handed_back = True
        await self._no_extension_out.wait()
        return await self._change_visibility(entries)

    async def _change_visibility(self, entries: list[tuple[Message, int]]) -> set[Message]:
        """ChangeMessageVisibilityBatch for (message, seconds) pairs, order kept; returns the ones that failed."""
        batches = batches_by_queue(entries, lambda entry: entry[0].queue_url)
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

    def _record(
        self,
        message: Message,
        outcome: Outcome,
        level: int,
        error: Sqs2pgError | None = None,
        settled: bool = True,
        **fields: object,
    ) -> None:
        """The outcome's metric and its log line, with the same word; ``settled``: it leaves memory now."""
        self._metrics.messages.labels(message.queue_name, outcome.value).inc()
        if settled:
            self._metrics.in_flight.labels(message.queue_name).dec()
        traces.outcome(message, outcome.value, error, **fields)  # (first: a message released untried gets its span)
        if error is not None:
            fields["error_kind"] = error.kind
            fields["error"] = str(error)[:300]
        logs.event(level, f"message {outcome.value}", "settle", outcome=outcome.value, **message.log_fields(), **fields)
