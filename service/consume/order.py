"""Order checked, not assumed: whether a queue's SQS server numbers each group's messages in FIFO order."""

from __future__ import annotations

import asyncio
import logging

from ..message import Message
from ..observe import logs
from ..sqs.queues import QueueInfo
from .ports import Database


class OrderCheck:
    """Whether a queue's server numbers each group's messages in order, judged from what it hands out: a message
    handed out for the first time (ApproximateReceiveCount 1) must have a higher SequenceNumber than every message
    of its group handed out before it. SQS's do (and LocalStack's, fauxqs's, sqs2pg's local SQS's); stock moto
    gives random numbers. Once ``PROOF`` pairs agree (random numbers would, one time in 2**PROOF), the numbers
    order a group's messages in memory (dispatcher.py) and are its position in the database (db/records.py), and
    receives may overlap. The first pair that disagrees, before or after, and the server's numbers are not used
    again: one receive at a time (the server's group lock then keeps order in this process), SentTimestamp as the
    position. Before the verdict receives do not overlap, and a message is checked by both keys: it is older only
    where both say so (on SQS the numbers then never call a newer message older). A verdict is stored for every
    replica and restart; "sent" stays."""

    PROOF = 20
    REMEMBER = 10_000  # groups whose last number is kept

    def __init__(self, verdict: str | None = None) -> None:
        """``verdict``: the queue's, as a replica judged it before (stored in the database), if any."""
        self.verdict = verdict or "unknown"  # then "sequence" or "sent" (Message.order)
        self._last: dict[str, int] = {}
        self._agreed = 0

    def observe(self, messages: list[Message]) -> str:
        """Judge by these (in the order the server handed them out); each gets the order it is checked by."""
        for m in messages:
            if self.verdict != "sent" and m.receive_count == 1:
                self._judge(m)
            m.order = self.verdict if self.verdict != "unknown" else "none"
        return self.verdict

    def _judge(self, m: Message) -> None:
        seq = m.sequence_number
        if seq is None:
            if self.verdict == "unknown":
                self.verdict = "sent"  # no numbers to check
            return
        last = self._last.pop(m.group_id, None)
        if last is not None and seq <= last:
            self.verdict = "sent"
            return
        if last is not None and seq > last:
            self._agreed += 1
            if self._agreed >= self.PROOF and self.verdict == "unknown":
                self.verdict = "sequence"
        self._last[m.group_id] = max(seq, last or 0)
        if len(self._last) > self.REMEMBER:
            del self._last[next(iter(self._last))]  # the group seen longest ago


class Verdicts:
    """The queues' verdicts, shared through the database: the first replica to judge a queue stores its verdict,
    and every replica and restart starts from it (a queue whose numbers are not in order is then checked by
    SentTimestamp from its first message, not only once a receive here has shown it)."""

    def __init__(self, store: Database) -> None:
        self._store = store
        self._storing: set[asyncio.Task[None]] = set()

    async def load(self) -> dict[tuple[str, int], str]:
        """Verdicts by (queue name, CreatedTimestamp); none when the database does not answer yet (each queue is
        then judged again)."""
        try:
            return await self._store.queue_orders()
        except Exception:  # noqa: BLE001 - the database being away is said by the app's probe
            return {}

    def remember(self, info: QueueInfo, verdict: str) -> None:
        """Store a new verdict, in the background: it is not on a message's path, and a failure only means the next
        start judges again."""
        task = asyncio.get_running_loop().create_task(self._store_one(info, verdict), name="verdict")
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store_one(self, info: QueueInfo, verdict: str) -> None:
        try:
            await self._store.judged(info.name, info.created, verdict)
        except Exception as exc:  # noqa: BLE001 - see remember
            logs.event(logging.DEBUG, "verdict not stored", "receive", queue=info.name, error=str(exc)[:300])
