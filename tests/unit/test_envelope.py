"""Envelopes opened as SNS (raw message delivery off) and EventBridge deliver them to SQS; shapes from their
documentation (SNS: "Fanout to Amazon SQS queues"; EventBridge: "Amazon EventBridge events")."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sqs2pg.envelope import InvalidEnvelope, open_body
from sqs2pg.message import Message

# What an SQS queue subscribed to an SNS FIFO topic receives when raw message delivery is off.
SNS = {
    "Type": "Notification",
    "MessageId": "63a3f6b6-d533-4a47-aef9-fcf5cf758c76",
    "SequenceNumber": "10000000000000003000",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:orders.fifo",
    "Subject": "order paid",
    "Message": '{"order": 42, "status": "paid"}',
    "Timestamp": "2026-03-29T05:12:16.901Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLEnTrFPa3...",
    "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:orders.fifo:c7fe3a54",
    "MessageAttributes": {
        "idempotency_key": {"Type": "String", "Value": "order-42-paid"},
        "amount": {"Type": "Number", "Value": "12.5"},
        "blob": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
    },
}
# What an SQS target of an EventBridge rule receives: the event, as it was put on the bus.
EVENTBRIDGE = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "OrderPaid",
    "source": "com.example.orders",
    "account": "111122223333",
    "time": "2026-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": [],
    "detail": {"order": 42, "status": "paid", "note": "ünïcode"},
}


def _message(body: dict[str, Any] | str, mode: str, attributes: dict[str, Any] | None = None) -> Message:
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": body if isinstance(body, str) else json.dumps(body),
        "Attributes": {"MessageGroupId": "g", "MessageDeduplicationId": "sqs-dedup", "ApproximateReceiveCount": "1"},
        "MessageAttributes": attributes or {},
    }
    return Message.from_sqs("http://x/1/q.fifo", raw, 30, mode)


@pytest.mark.parametrize("mode", ["sns", "auto"])
def test_an_sns_notification_gives_the_handler_its_message_and_its_attributes(mode: str) -> None:
    m = _message(SNS, mode)
    assert m.envelope == "sns"
    assert m.json == {"order": 42, "status": "paid"}
    assert m.idempotency_key == "order-42-paid"  # set on the SNS publish
    assert m.attribute("amount") == "12.5" and m.attributes["amount"]["DataType"] == "Number"
    assert m.attributes["blob"] == {"DataType": "Binary", "BinaryValue": b"\x00\x01"}
    # a dead-letter copy carries the envelope as it came, without the attributes taken out of it
    assert json.loads(m.queue_body) == SNS and m.queue_attributes == {}


def test_an_sns_notification_without_a_key_attribute_falls_back_to_the_deduplication_id() -> None:
    doc = {k: v for k, v in SNS.items() if k != "MessageAttributes"}
    assert _message(doc, "sns").idempotency_key == "sqs-dedup"


@pytest.mark.parametrize("mode", ["eventbridge", "auto"])
def test_an_eventbridge_event_gives_the_handler_its_detail_and_its_id_as_key(mode: str) -> None:
    m = _message(EVENTBRIDGE, mode)
    assert m.envelope == "eventbridge"
    assert m.json == EVENTBRIDGE["detail"]
    assert m.idempotency_key == EVENTBRIDGE["id"]
    # an idempotency_key attribute on the SQS message (a redriven copy carries it) still wins
    m = _message(EVENTBRIDGE, mode, {"idempotency_key": {"DataType": "String", "StringValue": "k"}})
    assert m.idempotency_key == "k"


def test_auto_leaves_a_plain_body_alone_and_none_opens_nothing() -> None:
    plain = _message({"order": 1}, "auto")
    assert (plain.envelope, plain.json, plain.idempotency_key) == (None, {"order": 1}, "sqs-dedup")
    untouched = _message(SNS, "none")
    assert untouched.envelope is None and untouched.json == SNS


@pytest.mark.parametrize(
    ("body", "mode", "why"),
    [
        ({**SNS, "Message": None}, "auto", "Message"),
        ({k: v for k, v in SNS.items() if k != "TopicArn"}, "sns", "TopicArn"),
        ({**SNS, "MessageAttributes": {"k": {"Type": "Weird", "Value": "x"}}}, "sns", "attribute"),
        ({**SNS, "MessageAttributes": {"k": {"Type": "Binary", "Value": "not base64!"}}}, "sns", "base64"),
        ({**EVENTBRIDGE, "detail": "a string"}, "auto", "detail"),
        ({k: v for k, v in EVENTBRIDGE.items() if k != "id"}, "eventbridge", "'id'"),
        ({"order": 1}, "sns", "not an SNS notification"),
        ("not json", "eventbridge", "not an EventBridge event"),
        (EVENTBRIDGE, "sns", "eventbridge envelope"),
    ],
)
def test_a_malformed_envelope_is_an_invalid_envelope_when_applied(body: Any, mode: str, why: str) -> None:
    with pytest.raises(InvalidEnvelope, match=why):
        open_body(body if isinstance(body, str) else json.dumps(body), mode)
    m = _message(body, mode)  # receiving it never fails; applying it does, with kind invalid_envelope
    with pytest.raises(InvalidEnvelope) as raised:
        _ = m.idempotency_key
    assert raised.value.kind == "invalid_envelope"
    assert m.queue_body == (body if isinstance(body, str) else json.dumps(body))


def test_a_drill_message_is_never_opened() -> None:
    m = _message({"seq": 1}, "sns", {"sqs2pg_drill": {"DataType": "String", "StringValue": "run"}})
    assert m.envelope is None and m.envelope_error is None
