"""Acknowledge: everything sqs2pg tells SQS about a message it holds, and the one place outcomes are recorded.

Every message that leaves memory leaves through one of these methods, so every message is counted once
under exactly one outcome word, in the metrics and in the log line alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict, deque
from typing import Iterable

from . import logs
from .errors import PermanentError, Sqs2pgError
from .message import Message
from .metrics import Metrics
from .retry import Outcome
from .sqs import QueueInfo, Sqs, chunks


class Acknowledger:
    def __init__(
        self, sqs: Sqs, metrics: Metrics, queues: dict[str, QueueInfo], flush_interval_s: float, max_unclaimed: int = 16
    ) -> None:
        self._sqs = sqs
        self._metrics = metrics
        self._queues = queues
        self._flush_interval_s = flush_interval_s
        self._pending: dict[str, list[Message]] = defaultdict(list)
        self._something = asyncio.Event()  # a delete is pending
        self._full = asyncio.Event()  # a queue has a full batch of 10 pending
        self._flushes: set[asyncio.Task[None]] = set()
        # Per queue URL: messages sqs2pg holds at SQS (received, not yet deleted or handed back). Their groups stay
        # locked at SQS until then; pollers wait for these let-gos (see poller.py).
        self._holding: Counter[str] = Counter()
        self._let_go_waiters: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        # per queue: let-gos no waiting poller took yet, up to one per receive lane (each starts one receive)
        self._unclaimed: Counter[str] = Counter()
        self._max_unclaimed = max_unclaimed

    # --- what sqs2pg holds at SQS ---------------------------------------------------------------------

    def hold(self, messages: list[Message]) -> None:
        """Received: held until deleted or handed back."""
        for m in messages:
            self._holding[m.queue_url] += 1

    def holding(self, url: str) -> int:
        return self._holding[url]

    async def next_let_go(self, url: str) -> None:
        """Until sqs2pg next lets go of messages of the queue at SQS (at once if it did since the last waiter
        took one, or holds nothing). Each let-go wakes one waiter, oldest first: what one delete batch unlocks
        fits one receive, and polls that all woke together would only split it into smaller batches."""
        if self._holding[url] <= 0:
            return
        if self._unclaimed[url] > 0:
            self._unclaimed[url] -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._let_go_waiters[url].append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled (a timeout): not waiting any more
                self._let_go_waiters[url].remove(waiter)

    def _letting_go(self, url: str) -> None:
        """A delete or hand-back of the queue's messages is on its way: wake one waiting poller (see next_let_go).
        Woken as the request is sent, not when it is answered, its receive reaches SQS just after it: when SQS
        is tens of milliseconds away, waiting for the answer would add one more round trip per message of a
        group. (If the receive overtakes it, it comes back short and the next let-go wakes a poller again.)"""
        waiters = self._let_go_waiters[url]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        # Nobody waits now (the lanes are receiving): keep it, or the number of receives kept going shrinks
        # by one every time this happens.
        self._unclaimed[url] = min(self._unclaimed[url] + 1, self._max_unclaimed)

    def _let_go_of(self, messages: Iterable[Message]) -> None:
        """Deleted or handed back at SQS (or the call failed: then the message's own timeout frees it)."""
        for url, n in Counter(m.queue_url for m in messages).items():
            self._holding[url] -= n
            if self._holding[url] <= 0:  # holding nothing: every waiting poller may long-poll now
                while self._let_go_waiters[url]:
                    if not (waiter := self._let_go_waiters[url].popleft()).done():
                        waiter.set_result(None)

    # --- outcomes -----------------------------------------------------------------------------------

    def delete(self, message: Message, outcome: Outcome, handled_s: float) -> None:
        """COMMITTED or DUPLICATE: delete it, batched with others (the commit is already durable)."""
        self._queue_delete(message)
        self._metrics.handle_seconds.labels(message.queue_name).observe(handled_s)
        if outcome is Outcome.COMMITTED and message.sent_timestamp_ms:
            self._metrics.age_seconds.labels(message.queue_name).observe(max(0.0, time.time() - message.sent_timestamp_ms / 1000))
        self._record(message, outcome, logging.DEBUG)

    async def retry(self, message: Message, behind: list[Message], visibility_s: int, error: Sqs2pgError) -> None:
        """RETRIED: leave it in the queue for visibility_s; hand back the messages held behind it.

        The messages behind it get visibility 0, not the backoff: SQS hands out nothing of a FIFO group while
        one of its messages is in flight, so the retried head alone holds the group, and when it comes back
        they come back after it, in order. (Giving them all the same backoff is not safer: moto's server, for
        one, then returns the *last* of them first.) The head's change is sent first, in the same batch.
        """
        self._letting_go(message.queue_url)
        await self._change_visibility([(message, visibility_s), *((m, 0) for m in behind)])
        self._let_go_of([message, *behind])
        self._record(message, Outcome.RETRIED, logging.WARNING, error=error, visibility_s=visibility_s)
        for m in behind:
            self._record(m, Outcome.RELEASED, logging.INFO, visibility_s=0, reason="behind a retried message")

    async def release(self, messages: Iterable[Message], reason: str) -> None:
        """RELEASED: hand messages back unprocessed with visibility 0, so their groups are not blocked."""
        messages = list(messages)
        if messages:
            for url in {m.queue_url for m in messages}:
                self._letting_go(url)
            await self._change_visibility([(m, 0) for m in messages])
            self._let_go_of(messages)
        for m in messages:
            self._record(m, Outcome.RELEASED, logging.INFO, visibility_s=0, reason=reason)

    async def dead_letter(self, message: Message, error: Sqs2pgError) -> None:
        """DEAD_LETTERED: copy it to the queue's DLQ with the reason, then delete it. Raises if the copy fails."""
        dlq_url = self._queues[message.queue_url].dlq_url
        try:
            await self._sqs.send_to_dlq(dlq_url, message, error)
        except PermanentError:
            # Rejected as sent (a body near the size limit plus our attributes, an odd original attribute):
            # the body, group and key must get there, the rest may not.
            await self._sqs.send_to_dlq(dlq_url, message, error, minimal=True)
        # A crash between the send and the delete redelivers it; the DLQ drops the second copy (same dedup id).
        self._queue_delete(message)
        self._record(message, Outcome.DEAD_LETTERED, logging.ERROR, error=error)

    # --- visibility -------------------------------------------------------------------------------------

    async def extend(self, messages: list[Message], visibility_s: int) -> None:
        """Heartbeat: keep messages we still hold invisible to other consumers."""
        now = time.monotonic()
        failed = await self._change_visibility([(m, visibility_s) for m in messages])
        for m in messages:
            if m not in failed:
                m.visible_until = now + visibility_s

    async def _change_visibility(self, entries: list[tuple[Message, int]]) -> set[Message]:
        """ChangeMessageVisibilityBatch for (message, seconds) pairs, order kept; returns the ones that failed."""
        by_queue: dict[str, list[tuple[Message, int]]] = defaultdict(list)
        for entry in entries:
            by_queue[entry[0].queue_url].append(entry)
        batches = [(url, batch) for url, es in by_queue.items() for batch in chunks(es)]
        results = await asyncio.gather(*(self._sqs.change_visibility(url, batch) for url, batch in batches), return_exceptions=True)
        failed: set[Message] = set()
        for (_, batch), result in zip(batches, results):
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
                    logging.WARNING, "visibility change failed", "change_visibility",
                    failed=len(batch_failed), error=reason[:300],
                )
        return failed

    # --- deletes --------------------------------------------------------------------------------------

    def _queue_delete(self, message: Message) -> None:
        pending = self._pending[message.queue_url]
        pending.append(message)
        self._something.set()
        if len(pending) >= 10:
            self._full.set()

    def flush_soon(self) -> None:
        """Send the pending deletes now rather than after the flush interval: nothing else in memory could
        join them (a quiet moment, or one busy group), and waiting would only delay a group's next message."""
        if self._something.is_set():
            self._full.set()

    async def run(self) -> None:
        """Flush pending deletes: at once when a batch of 10 is full or flush_soon() asks, else after the
        flush interval."""
        while True:
            await self._something.wait()
            if not self._full.is_set() and self._flush_interval_s > 0:
                try:
                    await asyncio.wait_for(self._full.wait(), self._flush_interval_s)
                except asyncio.TimeoutError:
                    pass
            # Take the batch now, before anything else can add to it, and send it without blocking the loop.
            task = asyncio.create_task(self._send(self._take()), name="acknowledge.flush")
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        """Send every pending delete now."""
        await self._send(self._take())

    def _take(self) -> dict[str, list[Message]]:
        self._something.clear()
        self._full.clear()
        pending, self._pending = self._pending, defaultdict(list)
        return pending

    async def _send(self, pending: dict[str, list[Message]]) -> None:
        await asyncio.gather(*(self._delete(url, batch) for url, ms in pending.items() for batch in chunks(ms)))

    async def close(self) -> None:
        """Final flush at shutdown, after in-flight work has settled."""
        await self.flush()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def _delete(self, url: str, batch: list[Message]) -> None:
        self._letting_go(url)
        try:
            failed = await self._sqs.delete(url, batch)
        except Sqs2pgError as exc:
            failed = [(m, str(exc)) for m in batch]
        finally:
            self._let_go_of(batch)
        for m, reason in failed:
            # The commit is durable; the message will come back and be recognised as a duplicate.
            logs.event(logging.WARNING, "delete failed", "delete", **m.log_fields(), error=reason[:300])

    def _record(self, message: Message, outcome: Outcome, level: int, error: Sqs2pgError | None = None, **fields: object) -> None:
        self._metrics.messages.labels(message.queue_name, outcome.value).inc()
        self._metrics.in_flight.labels(message.queue_name).dec()
        if error is not None:
            fields["error_kind"] = error.kind
            fields["error"] = str(error)[:300]
        logs.event(level, f"message {outcome.value}", "settle", outcome=outcome.value, **message.log_fields(), **fields)
