"""The two rules of a run (several messages of one group in one transaction, db/runs.py), with no server."""

from sqs2pg.db.runs import Passes, in_order
from sqs2pg.errors import Behind, NotAttempted, Outcome, PermanentError
from sqs2pg.message import Message


def msg(group: str, seq: int | None, sent: int | None = None, order: str = "sequence") -> Message:
    m = Message(
        queue_url="http://sqs/1/q.fifo",
        queue_name="q.fifo",
        message_id=f"{group}-{seq}-{sent}",
        receipt_handle="r",
        body="{}",
        group_id=group,
        deduplication_id=None,
        receive_count=1,
        sent_timestamp_ms=sent,
        attributes={},
    )
    m.sequence_number, m.order = seq, order
    return m


def test_a_run_is_in_order_only_when_each_is_newer_than_the_one_before_by_every_key_both_have() -> None:
    assert in_order([msg("a", 1), msg("b", 7), msg("a", 2), msg("a", 3)])
    assert not in_order([msg("a", 2), msg("a", 1)])
    assert not in_order([msg("a", 2), msg("a", 2)])  # the same SequenceNumber twice: not a run
    # by SentTimestamp (a server whose numbers are not trusted): equal is fine, older is not
    assert in_order([msg("a", None, 5, "sent"), msg("a", None, 5, "sent"), msg("a", None, 6, "sent")])
    assert not in_order([msg("a", None, 6, "sent"), msg("a", None, 5, "sent")])
    # nothing to order two of one group by: not together (each is then checked alone)
    assert not in_order([msg("a", None, None, "sent"), msg("a", None, None, "sent")])
    assert in_order([msg("a", None, None, "sent"), msg("b", None, None, "sent")])  # different groups


def test_once_a_group_fails_in_a_pass_its_later_messages_are_behind_and_other_groups_go_on() -> None:
    passes = Passes()
    a1, a2, b1 = msg("a", 1), msg("a", 2), msg("b", 1)
    assert passes.result(a1, PermanentError("bad")) is not None
    assert passes.behind(a2) and not passes.behind(b1)
    assert passes.result(b1, Outcome.COMMITTED) is Outcome.COMMITTED and not passes.behind(msg("b", 2))
    rest = passes.rest([a2, msg("c", 1)], NotAttempted())
    assert isinstance(rest[0], Behind) and isinstance(rest[1], NotAttempted)
