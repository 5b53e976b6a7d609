"""The producer's pure parts: keys, deduplication ids, sizes, batches and refusals (the round trips against real
SQS servers are in tests/integration/test_producer.py)."""

from __future__ import annotations

import hashlib

import pytest

from sqs2pg import Producer, ProducerError
from sqs2pg.producer import BATCH_BYTES, Write, _batches, dedup_id


def test_the_deduplication_id_is_the_key_when_sqs_accepts_it_else_its_sha256() -> None:
    assert dedup_id("order-42-paid") == "order-42-paid"
    long_key = "k" * 200
    assert dedup_id(long_key) == hashlib.sha256(long_key.encode()).hexdigest()
    assert dedup_id("with space") == hashlib.sha256(b"with space").hexdigest()


def test_writes_that_cannot_be_sent_are_refused_before_anything_is_sent() -> None:
    p = Producer("http://127.0.0.1:1/000000000000/q.fifo", region="us-east-1")
    p.max_bytes = 1000
    p.validate(Write({"a": 1}, "g"))
    with pytest.raises(ProducerError, match="group"):
        p.validate(Write({"a": 1}, ""))
    with pytest.raises(ProducerError, match="group"):
        p.validate(Write({"a": 1}, "g" * 129))
    with pytest.raises(ProducerError, match="MaximumMessageSize of 1000"):
        p.validate(Write("x" * 990, "g", "key"))  # the body fits, not with its idempotency_key attribute
    with pytest.raises(ProducerError, match="key"):
        p.validate(Write({"a": 1}, "g", "k" * 513))
    with pytest.raises(ProducerError, match="FIFO"):
        Producer("http://127.0.0.1:1/000000000000/q")


def test_batches_hold_at_most_10_writes_and_at_most_what_one_batch_may_carry() -> None:
    entries = [{"Id": str(i), "_size": 1} for i in range(23)]
    assert [len(b) for b in _batches(entries)] == [10, 10, 3]
    big = [{"Id": str(i), "_size": BATCH_BYTES // 3 + 1} for i in range(4)]
    assert [len(b) for b in _batches(big)] == [2, 2]
