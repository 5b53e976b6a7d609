"""The producer's pure parts: keys, deduplication ids, sizes, batches and refusals (the round trips against real
SQS servers are in tests/integration/test_producer.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sqs2pg import Producer, ProducerError
from sqs2pg.message import dedup_id
from sqs2pg.producer import BATCH_BYTES, Failed, Sent, Write, _batches


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


class _Batches:
    """An SQS client double for SendMessageBatch only: fails the entries named in ``plan`` (per call), as SQS
    reports a partial failure."""

    def __init__(self, plan: list[dict[str, tuple[str, bool]]]) -> None:
        self.plan = plan  # per call: Id -> (code, sender_fault)
        self.calls: list[list[str]] = []

    async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        fail = self.plan[len(self.calls)] if len(self.calls) < len(self.plan) else {}
        self.calls.append([e["MessageAttributes"]["idempotency_key"]["StringValue"] for e in Entries])
        return {
            "Successful": [{"Id": e["Id"], "MessageId": "m-" + e["Id"]} for e in Entries if e["Id"] not in fail],
            "Failed": [
                {"Id": i, "Code": code, "Message": code, "SenderFault": sender} for i, (code, sender) in fail.items()
            ],
        }


def _producer(client: _Batches) -> Producer:
    p = Producer("http://127.0.0.1:1/000000000000/q.fifo", region="us-east-1")
    p._client = client
    return p


async def test_entries_sqs_failed_on_its_side_are_sent_again_alone() -> None:
    client = _Batches([{"1": ("InternalError", False)}])
    results = await _producer(client).send_many([Write({}, "a", "a0"), Write({}, "b", "b0"), Write({}, "c", "c0")])
    assert client.calls == [["a0", "b0", "c0"], ["b0"]]
    assert all(isinstance(r, Sent) for r in results)


async def test_a_group_is_never_reordered_a_failed_write_stops_its_group_not_the_others() -> None:
    # a0 fails on SQS's side but a1 (same group) went through beside it: a0 is not resent after a1.
    # b0 is refused as the sender's fault: b1 in the next batch is skipped, c goes on.
    client = _Batches([{"0": ("InternalError", False), "2": ("InvalidParameterValue", True)}])
    writes = [Write({}, "a", "a0"), Write({}, "a", "a1"), Write({}, "b", "b0")] + [
        Write({}, "c", f"c{i}") for i in range(7)
    ]
    writes += [Write({}, "b", "b1"), Write({}, "c", "c7")]
    results = await _producer(client).send_many(writes)
    assert client.calls == [["a0", "a1", "b0"] + [f"c{i}" for i in range(7)], ["c7"]]
    by_key = {r.key: r for r in results}
    assert isinstance(by_key["a0"], Failed) and by_key["a0"].code == "InternalError"
    assert isinstance(by_key["b0"], Failed) and by_key["b0"].code == "InvalidParameterValue"
    assert isinstance(by_key["b1"], Failed) and by_key["b1"].code == "skipped"
    assert all(isinstance(by_key[k], Sent) for k in ["a1", "c0", "c6", "c7"])
