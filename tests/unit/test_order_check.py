"""Judging a server's SequenceNumbers from what it hands out (consume/order.py), with no server."""

from __future__ import annotations

import itertools

from sqs2pg.consume.order import OrderCheck
from sqs2pg.message import Message

_ids = itertools.count()


def msg(group: str, seq: int | None, receive_count: int = 1) -> Message:
    n = next(_ids)
    return Message(
        queue_url="http://sqs/1/q.fifo",
        queue_name="q.fifo",
        message_id=f"m{n}",
        receipt_handle=f"r{n}",
        body="{}",
        group_id=group,
        deduplication_id=f"d{n}",
        receive_count=receive_count,
        sent_timestamp_ms=1_000 + n,
        attributes={},
        sequence_number=seq,
    )


def test_numbers_that_increase_in_each_group_are_trusted_after_proof() -> None:
    """Random numbers agree pair after pair one time in 2**PROOF: a few pairs are not proof (stock moto once passed
    three), twenty are."""
    check = OrderCheck()
    first = [msg("a", 10), msg("b", 11), msg("a", 12)]
    assert check.observe(first) == "unknown" and {m.order for m in first} == {"none"}
    for n in range(OrderCheck.PROOF - 2):  # the first pair came above: one short of proof
        assert check.observe([msg("ab"[n % 2], 13 + n)]) == "unknown"
    last = [msg("a", 100)]
    assert check.observe(last) == "sequence" and last[0].order == "sequence"
    assert last[0].order_keys == (100, None)
    # and a pair that disagrees afterwards ends the trust for good
    assert check.observe([msg("a", 50)]) == "sent" and check.observe([msg("b", 999)]) == "sent"


def test_a_number_lower_than_its_groups_last_is_a_server_not_to_trust() -> None:
    """Stock moto numbers messages at random: the first group whose next message has a lower number decides."""
    check = OrderCheck()
    check.observe([msg("a", 90), msg("b", 11)])
    later = [msg("a", 40)]
    assert check.observe(later) == "sent" and later[0].order == "sent"
    assert later[0].order_keys == (None, later[0].sent_timestamp_ms)
    assert check.observe([msg("a", 99)]) == "sent"  # for good


def test_a_message_handed_out_again_proves_nothing() -> None:
    """A redelivery (its visibility lapsed, or it was handed back) may come after newer messages of its group."""
    check = OrderCheck()
    check.observe([msg("a", 50)])
    assert check.observe([msg("a", 20, receive_count=2)]) == "unknown"


def test_a_server_without_numbers_is_checked_by_sent_time() -> None:
    assert OrderCheck().observe([msg("a", None)]) == "sent"


def test_before_a_verdict_a_message_is_checked_by_both_keys_and_a_stored_verdict_is_used_at_once() -> None:
    m = msg("a", 7)
    assert OrderCheck().observe([m]) == "unknown" and m.order_keys == (7, m.sent_timestamp_ms)
    n = msg("a", 3)
    assert OrderCheck("sent").observe([n]) == "sent" and n.order_keys == (None, n.sent_timestamp_ms)
