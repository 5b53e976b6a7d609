import pytest

from sqs2pg.errors import InvalidMessage
from sqs2pg.message import Message


def raw(body: str = "{}", attrs: dict | None = None, dedup: str | None = "d-1") -> dict:
    system = {"MessageGroupId": "g", "ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"}
    if dedup:
        system["MessageDeduplicationId"] = dedup
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "r",
        "Body": body,
        "Attributes": system,
        "MessageAttributes": attrs or {},
    }


def test_fields_from_sqs() -> None:
    m = Message.from_sqs("http://sqs/1/orders.fifo", raw(), 30)
    assert (m.queue_name, m.group_id, m.receive_count, m.sent_timestamp_ms) == ("orders.fifo", "g", 3, 1700000000000)
    assert m.visible_until - m.received_at == pytest.approx(30)


def test_idempotency_key_prefers_the_attribute_then_the_deduplication_id() -> None:
    with_attr = raw(attrs={"idempotency_key": {"DataType": "String", "StringValue": "k-9"}})
    assert Message.from_sqs("u/q.fifo", with_attr, 30).idempotency_key == "k-9"
    assert Message.from_sqs("u/q.fifo", raw(), 30).idempotency_key == "d-1"


@pytest.mark.parametrize(
    "raw_message",
    [
        raw(attrs={"idempotency_key": {"DataType": "Binary", "BinaryValue": b"k"}}),
        raw(attrs={"idempotency_key": {"DataType": "String", "StringValue": "x" * 513}}),
        raw(dedup=None),
    ],
)
def test_a_bad_key_is_an_invalid_message(raw_message: dict) -> None:
    with pytest.raises(InvalidMessage):
        _ = Message.from_sqs("u/q.fifo", raw_message, 30).idempotency_key


def test_json_parsing_is_lazy_and_tolerant() -> None:
    assert Message.from_sqs("u/q.fifo", raw('{"a": 1}'), 30).json == {"a": 1}
    bad = Message.from_sqs("u/q.fifo", raw("not json"), 30)
    assert not bad.is_json
    with pytest.raises(InvalidMessage):
        _ = bad.json
    deep = Message.from_sqs("u/q.fifo", raw("[" * 100000 + "]" * 100000), 30)
    assert not deep.is_json  # RecursionError is caught, not raised


def test_body_hash_tells_bodies_apart() -> None:
    a = Message.from_sqs("u/q.fifo", raw('{"a": 1}'), 30)
    b = Message.from_sqs("u/q.fifo", raw('{"a": 2}'), 30)
    assert a.body_sha256 != b.body_sha256 and len(a.body_sha256) == 32


def test_a_copy_back_from_the_dead_letter_queue_is_recognised_as_redriven() -> None:
    s = {"DataType": "String", "StringValue": "x"}
    assert not Message.from_sqs("u/q.fifo", raw(), 30).redriven
    # `sqs2pg dlq redrive` marks its copies; SQS's own DLQ redrive keeps the attributes of sqs2pg's DLQ copy
    assert Message.from_sqs("u/q.fifo", raw(attrs={"sqs2pg_redriven_from": s}), 30).redriven
    assert Message.from_sqs("u/q.fifo", raw(attrs={"sqs2pg_error_kind": s}), 30).redriven
