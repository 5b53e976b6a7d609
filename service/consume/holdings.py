"""What sqs2pg holds at SQS, per queue: messages received and not yet deleted or handed back.

Their groups stay locked at SQS until then. The pollers read this to choose their polls (poller.py); the
settling side writes it (settle.py, deletes.py): a message is held from its receive to the end of the call
that deletes it or hands it back.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict, deque
from collections.abc import Iterable

from ..message import Message


class Holdings:
    def __init__(self, max_unclaimed: int) -> None:
        self._held: Counter[str] = Counter()  # per queue URL
        self._waiters: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        # per queue: let-gos no waiting poller took yet, up to one per receive lane (each starts one receive)
        self._unclaimed: Counter[str] = Counter()
        self._max_unclaimed = max_unclaimed

    def hold(self, messages: Iterable[Message]) -> None:
        """Received: held until deleted or handed back."""
        for m in messages:
            self._held[m.queue_url] += 1

    def holding(self, url: str) -> int:
        return self._held[url]

    async def next_let_go(self, url: str) -> None:
        """Until sqs2pg next lets go of messages of the queue (at once if it did since the last waiter took one,
        or holds nothing). Each let-go wakes one waiter, oldest first: what one delete batch unlocks fits one
        receive, and polls that all woke together would only split it into smaller batches."""
        if self._held[url] <= 0:
            return
        if self._unclaimed[url] > 0:
            self._unclaimed[url] -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[url].append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled (a timeout): not waiting any more
                self._waiters[url].remove(waiter)

    def letting_go(self, url: str) -> None:
        """A delete or hand-back of the queue's messages is on its way: wake one waiting poller. Woken as the
        request is sent, not when it is answered, its receive reaches SQS just after it: when SQS is tens of
        milliseconds away, waiting for the answer would add one more round trip per message of a group. (If
        the receive overtakes it, it comes back short and the next let-go wakes a poller again.)"""
        waiters = self._waiters[url]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        # Nobody waits now (the lanes are receiving): keep it, or the number of receives kept going shrinks
        # by one every time this happens.
        self._unclaimed[url] = min(self._unclaimed[url] + 1, self._max_unclaimed)

    def let_go(self, messages: Iterable[Message]) -> None:
        """Deleted or handed back at SQS (or the call failed: then the message's own timeout frees it)."""
        for url, n in Counter(m.queue_url for m in messages).items():
            self._held[url] -= n
            if self._held[url] <= 0:  # holding nothing: every waiting poller may long-poll now
                while self._waiters[url]:
                    if not (waiter := self._waiters[url].popleft()).done():
                        waiter.set_result(None)
