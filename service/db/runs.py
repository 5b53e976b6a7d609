"""Runs: several consecutive messages of one group in one transaction (consume/dispatcher.py hands them out when
they are held right behind their group's head), and the two rules that keep the group's order while they are.

- Together, a group's messages go in their order, each newer than the one before it (``in_order``); records.py's
  CLAIM_MANY then checks the first against the group's position and moves the position to the last.
- One at a time (the shared transaction failed, or could not be tried), a group's messages are tried in order,
  and once one of them fails the ones after it are not tried (``Passes``): they are ``Behind`` it, and go back
  into the group behind it, whatever becomes of it (retried, dead-lettered, held, released).
"""

from __future__ import annotations

from ..errors import Behind, Outcome, Sqs2pgError
from ..message import Message


def in_order(messages: list[Message]) -> bool:
    """Each group's messages, in the order given, are each newer than the one before by every key both have
    (SequenceNumber strictly; SentTimestamp may be equal): what CLAIM_MANY assumes of a run."""
    last: dict[tuple[str, str], Message] = {}
    for m in messages:
        key = (m.queue_url, m.group_id)
        before = last.get(key)
        last[key] = m
        if before is None:
            continue
        (seq_before, sent_before), (seq, sent) = before.order_keys, m.order_keys
        by_seq = seq_before is not None and seq is not None
        by_sent = sent_before is not None and sent is not None
        if not (by_seq or by_sent):
            return False  # nothing to order them by: one at a time, where each is checked on its own
        if (by_seq and seq <= seq_before) or (by_sent and sent < sent_before):  # type: ignore[operator]
            return False
    return True


class Passes:
    """One pass over messages one at a time: which are still to be tried, and what the rest get."""

    def __init__(self) -> None:
        self._failed: set[tuple[str, str]] = set()

    def behind(self, message: Message) -> bool:
        """An earlier message of its group failed in this pass: do not try it."""
        return (message.queue_url, message.group_id) in self._failed

    def result(self, message: Message, result: Outcome | Sqs2pgError) -> Outcome | Sqs2pgError:
        """Note a message's result (a failure stops its group for the rest of the pass); returns it."""
        if not isinstance(result, Outcome):
            self._failed.add((message.queue_url, message.group_id))
        return result

    def rest(self, messages: list[Message], otherwise: Sqs2pgError) -> list[Outcome | Sqs2pgError]:
        """The results of messages the pass gives up on: Behind for those of a group that failed in it (they must
        not be tried before that one), ``otherwise`` for the others."""
        return [Behind() if self.behind(m) else otherwise for m in messages]
