"""Deletes, batched: a committed message's DeleteMessageBatch entry waits a few milliseconds for company.

The commit is durable before a delete is queued, so nothing here can lose a message: a delete that fails
or never happens only brings the message back, and it is then recognised as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from ..errors import Sqs2pgError
from ..message import Message
from ..observe import logs, traces
from ..sqs.client import BATCH, batches_by_queue
from .holdings import Holdings
from .ports import Queues


class DeleteBatcher:
    def __init__(self, sqs: Queues, holdings: Holdings, flush_interval_s: float) -> None:
        self._sqs = sqs
        self._holdings = holdings
        self._flush_interval_s = flush_interval_s
        self._pending: dict[str, list[Message]] = defaultdict(list)
        self._something = asyncio.Event()  # a delete is pending
        self._full = asyncio.Event()  # a queue has a full batch of 10 pending
        self._flushes: set[asyncio.Task[None]] = set()

    def add(self, message: Message) -> None:
        """Queue the message's delete. Synchronous on purpose: no await can come between a commit and this."""
        pending = self._pending[message.queue_url]
        pending.append(message)
        self._something.set()
        if len(pending) >= BATCH:
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._flush_interval_s)
            # Take the batch now, before anything else can add to it, and send it without blocking the loop.
            task = asyncio.create_task(self._send(self._take()), name="deletes.flush")
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def close(self) -> None:
        """Final flush at shutdown, after in-flight work has settled."""
        await self._send(self._take())
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    def _take(self) -> dict[str, list[Message]]:
        self._something.clear()
        self._full.clear()
        pending, self._pending = self._pending, defaultdict(list)
        return pending

    async def _send(self, pending: dict[str, list[Message]]) -> None:
        messages = [m for ms in pending.values() for m in ms]
        await asyncio.gather(*(self._delete(url, batch) for url, batch in batches_by_queue(messages, _queue_url)))

    async def _delete(self, url: str, batch: list[Message]) -> None:
        self._holdings.letting_go(url)
        started_ns, failed = time.time_ns(), [(m, "cancelled") for m in batch]
        try:
            failed = await self._sqs.delete(url, batch)
        except Sqs2pgError as exc:
            failed = [(m, str(exc)) for m in batch]
        finally:
            self._holdings.let_go(batch)
            traces.settled("delete", batch, started_ns, dict(failed))
        for m, reason in failed:
            # The commit is durable; the message will come back and be recognised as a duplicate.
            logs.event(logging.WARNING, "delete failed", "delete", **m.log_fields(), error=reason[:300])


def _queue_url(message: Message) -> str:
    return message.queue_url
