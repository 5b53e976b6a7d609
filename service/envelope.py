"""Envelopes: a body that is an SNS notification or an EventBridge event, opened to the write inside it.

An order service that fans out through an SNS FIFO topic (raw message delivery off) or EventBridge puts its
write inside the body SQS delivers. ``SQS2PG_ENVELOPE`` says what to expect:

- ``none`` (default): the body is the write.
- ``sns``: every body is an SNS notification; the handler gets its ``Message``, and its ``MessageAttributes``
  become message attributes (so ``idempotency_key`` set on the SNS publish is the key).
- ``eventbridge``: every body is an EventBridge event; the handler gets its ``detail`` (as JSON), and the
  event's ``id`` is the idempotency key unless the message carries an ``idempotency_key`` attribute.
- ``auto``: each body is looked at; an envelope of either kind is opened, anything else is the write.

A body that says it is an envelope (an SNS ``"Type": "Notification"``; an EventBridge ``detail-type`` and
``source``) but lacks what one carries, or, under ``sns``/``eventbridge``, a body that is not one at all, is
``InvalidEnvelope``: dead-lettered with the reason ``invalid_envelope``. Pure functions; no I/O.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidMessage

MODES = ("none", "sns", "eventbridge", "auto")
SNS_ATTRIBUTE_TYPES = {"String": "String", "Number": "Number", "Binary": "Binary", "String.Array": "String"}


class InvalidEnvelope(InvalidMessage):
    """The body says it is an SNS or EventBridge envelope but is not a well-formed one."""

    kind = "invalid_envelope"


@dataclass(frozen=True)
class Opened:
    kind: str  # "sns" or "eventbridge"
    body: str  # what the handler gets
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # SQS-shaped, from the envelope
    key: str | None = None  # the envelope's own idempotency key (EventBridge's event id), if it has one


def open_body(body: str, mode: str) -> Opened | None:
    """The envelope's inner message, None when the body is not an envelope (``none``, or ``auto`` on a plain
    body). Raises InvalidEnvelope as the module docstring says."""
    if mode == "none":
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    kind = _says(doc)
    if kind is None:
        if mode == "auto":
            return None
        expected = "an SNS notification" if mode == "sns" else "an EventBridge event"
        raise InvalidEnvelope(f"SQS2PG_ENVELOPE={mode}: the body is not {expected}")
    if mode not in ("auto", kind):
        raise InvalidEnvelope(f"SQS2PG_ENVELOPE={mode}: the body is an {kind} envelope")
    assert isinstance(doc, dict)
    return _sns(doc) if kind == "sns" else _eventbridge(doc)


def _says(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    if doc.get("Type") == "Notification" or ("TopicArn" in doc and "Message" in doc):
        return "sns"
    if "detail-type" in doc and "source" in doc:
        return "eventbridge"
    return None


def _sns(doc: dict[str, Any]) -> Opened:
    for name in ("MessageId", "TopicArn", "Message"):
        if not isinstance(doc.get(name), str):
            raise InvalidEnvelope(f"SNS notification without a string {name}")
    if doc.get("Type") != "Notification":
        raise InvalidEnvelope(f"SNS message of Type {doc.get('Type')!r}, not Notification")
    raw = doc.get("MessageAttributes") or {}
    if not isinstance(raw, dict):
        raise InvalidEnvelope("SNS MessageAttributes is not an object")
    attributes: dict[str, dict[str, Any]] = {}
    for name, attr in raw.items():
        kind = SNS_ATTRIBUTE_TYPES.get(str(attr.get("Type"))) if isinstance(attr, dict) else None
        if kind is None or not isinstance(attr.get("Value"), str):
            raise InvalidEnvelope(f"SNS message attribute {name!r} is not a {{Type, Value}} of a known type")
        if kind == "Binary":
            try:
                attributes[name] = {"DataType": kind, "BinaryValue": base64.b64decode(attr["Value"], validate=True)}
            except ValueError:
                raise InvalidEnvelope(f"SNS message attribute {name!r} is not valid base64") from None
        else:
            attributes[name] = {"DataType": kind, "StringValue": attr["Value"]}
    return Opened("sns", doc["Message"], attributes)


def _eventbridge(doc: dict[str, Any]) -> Opened:
    for name in ("id", "source", "detail-type"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise InvalidEnvelope(f"EventBridge event without a string {name!r}")
    if not isinstance(doc.get("detail"), dict):
        raise InvalidEnvelope("EventBridge event without a detail object")
    return Opened("eventbridge", json.dumps(doc["detail"], ensure_ascii=False), key=doc["id"])
