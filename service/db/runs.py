"""Shared transactions: the statement that claims their keys, and runs, several consecutive messages of one group
in one (consume/dispatcher.py hands them out when they are held right behind their group's head), with the two
rules that keep the group's order while they are.

- Together, a group's messages go in their order, each newer than the one before it (``in_order``); CLAIM_MANY
  then checks the first against the group's position and moves the position to the last.
- One at a time (the shared transaction failed, or could not be tried), a group's messages are tried in order,
  and once one of them fails the ones after it are not tried (``Passes``): they are ``Behind`` it, and go back
  into the group behind it, whatever becomes of it (retried, dead-lettered, held, released).
"""

from __future__ import annotations

from ..errors import Behind, Outcome, Sqs2pgError
from ..message import Message
from .records import MOVE_RUN, POSITIONS

# records.CLAIM for a shared transaction (heads of different groups, and runs of a group in order): all keys
# claimed, each group's position moved once, to its last message where its first is not older, in one round trip.
# The keys are locked (sqs2pg_claim, migration 0005) before any position is, in every claim: no two deadlock.
# Every key new and every group in order, or the transaction is not shared. SequenceNumbers travel as text. A
# handler's fused form (handler.py) goes in the same statement (claim_many): its rows counted as ``applied``.
_CLAIM_MANY = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]::numeric[], $8::bigint[]
    ) WITH ORDINALITY AS t(k, h, q, m, g, c, s, ms, i)
), claimed AS (
    SELECT FROM sqs2pg_claim($1, $2, $3, $4)
), ordered AS (
    SELECT * FROM input WHERE s IS NOT NULL OR ms IS NOT NULL
), firsts AS (
    SELECT DISTINCT ON (q, g) q, g, s AS sequence_number, ms AS sent_ms FROM ordered ORDER BY q, g, i
), lasts AS (
    SELECT DISTINCT ON (q, g) q, g, c, s, ms, m FROM ordered ORDER BY q, g, i DESC
), moved AS (
    INSERT INTO {POSITIONS}
    SELECT q, g, c, s, ms, m FROM lasts WHERE EXISTS (SELECT FROM claimed)
    {MOVE_RUN}
    RETURNING 1
){{fused}}
SELECT (SELECT count(*) FROM claimed) = cardinality($1::text[])
   AND (SELECT count(*) FROM moved) = (SELECT count(*) FROM lasts) AS together{{applied}}
"""
CLAIM_MANY = _CLAIM_MANY.format(fused="", applied="")


def claim_many(fused: str) -> str:
    return _CLAIM_MANY.format(
        fused=f", fused AS ({fused} RETURNING 1)", applied=", (SELECT count(*) FROM fused) AS applied"
    )


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
