"""Order checked, not assumed: whether a queue's SQS server numbers each group's messages in FIFO order."""

from __future__ import annotations

from ..message import Message


class OrderCheck:
    """Whether a queue's server numbers each group's messages in order, judged from what it hands out: a message
    handed out for the first time (ApproximateReceiveCount 1) must have a higher SequenceNumber than every message
    of its group handed out before it. SQS's do (and LocalStack's, fauxqs's, sqs2pg's local SQS's); stock moto
    gives random numbers. Until ``PROOF`` pairs agree, receives do not overlap and no order is checked; once
    they do, the numbers order a group's messages in memory (dispatcher.py) and are its position in the database
    (db/records.py), and receives may overlap; the first that disagrees, the server's numbers are not used: one
    receive at a time (the server's group lock then keeps order in this process), SentTimestamp as the position."""

    PROOF = 3
    REMEMBER = 10_000  # groups whose last number is kept

    def __init__(self) -> None:
        self.verdict = "unknown"  # then "sequence" or "sent" (Message.order)
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
        if last is not None and seq <= last and self.verdict == "unknown":
            self.verdict = "sent"
            return
        if last is not None and seq > last:
            self._agreed += 1
            if self._agreed >= self.PROOF and self.verdict == "unknown":
                self.verdict = "sequence"
        self._last[m.group_id] = max(seq, last or 0)
        if len(self._last) > self.REMEMBER:
            del self._last[next(iter(self._last))]  # the group seen longest ago
