"""The dead-letter copy's shape: what sqs2pg writes on a copy it sends to a DLQ, and what it reads back from a
DLQ message (its reason, the id the service logged, what a redriven copy carries back).

A copy carries the body as it arrived on the queue, the group, the idempotency key and the reason (message.py
names every attribute). Attributes count toward SQS's size limit (1 MiB), so a body near it may not take them
all: then the original attributes are left out ("minimal", ours with the error text cut short), then ours
but the key ("key"), then everything ("body": the body fitted the source queue, so it fits alone). The reason
is in the database's dead-letter record whatever fits here.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ..errors import PermanentError, Sqs2pgError
from ..message import (
    ERROR_ATTRIBUTE,
    ERROR_KIND_ATTRIBUTE,
    IDEMPOTENCY_ATTRIBUTE,
    MAX_ATTRIBUTES,
    RECEIVE_COUNT_ATTRIBUTE,
    REDRIVE_ATTRIBUTE,
    RESERVED_PREFIX,
    SOURCE_QUEUE_ATTRIBUTE,
    Message,
)

# SQS accepts only these characters in bodies and attribute values (the XML 1.0 set).
_INVALID_CHARS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Attributes = dict[str, dict[str, Any]]


def string(value: str) -> dict[str, str]:
    """A String attribute SQS accepts: characters it refuses become '?'."""
    return {"DataType": "String", "StringValue": _INVALID_CHARS.sub("?", value) or "?"}


def _reason(message: Message, error: Sqs2pgError, error_chars: int) -> Attributes:
    return {
        ERROR_KIND_ATTRIBUTE: string(error.kind),
        ERROR_ATTRIBUTE: string(str(error)[:error_chars] or error.kind),
        RECEIVE_COUNT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(message.receive_count)},
        SOURCE_QUEUE_ATTRIBUTE: string(message.queue_name),
    }


def levels(message: Message, error: Sqs2pgError) -> list[tuple[str, Attributes, bool]]:
    """The copies to try, fullest first: (level, sqs2pg's attributes, whether the original ones go too)."""
    try:
        key = {IDEMPOTENCY_ATTRIBUTE: string(message.idempotency_key)}
    except PermanentError:
        key = {}  # (when the key itself is what is wrong, the original attribute, if any, is kept)
    return [
        ("full", {**_reason(message, error, 1024), **key}, True),
        ("minimal", {**_reason(message, error, 100), **key}, False),
        ("key", key, False),
        ("body", {}, False),
    ]


def originals(message: Message) -> Attributes:
    """The message's own attributes as the queue holds them (never sqs2pg's; an opened envelope's stay inside the
    body, which goes as it came)."""
    return {
        k: {f: v[f] for f in ("DataType", "StringValue", "BinaryValue") if f in v}
        for k, v in message.queue_attributes.items()
        if not k.startswith(RESERVED_PREFIX)
    }


def merged(
    message: Message,
    attributes: Attributes,
    keep_original: bool,
    restored: Attributes | None = None,
    trace: Attributes | None = None,
) -> tuple[Attributes, list[str]]:
    """``attributes`` first, then as many of the message's original attributes (and of ``restored``: those its
    dead-letter record kept) as SQS's limit of 10 leaves room for; ``trace``, the trace context the copy carries
    (observe/traces.py), in the slot of the message's own where it had one (even where its other attributes are
    left out), else where room is left. Returns them, and the names of the message's own left out."""
    out = dict(attributes)
    trace = trace or {}
    candidates = {**(restored or {}), **originals(message)}
    room = max(0, MAX_ATTRIBUTES - len(out))
    own_context = [k for k in candidates if k in trace and k not in out]
    rest = sorted(k for k in candidates if k not in trace and k not in out) if keep_original else []
    for k in (own_context + rest)[:room]:
        out[k] = trace.get(k, candidates[k])
    for k, v in trace.items():  # a context the message did not carry: never in the place of its own attributes
        if k not in out and len(out) < MAX_ATTRIBUTES:
            out[k] = v
    return out, sorted(k for k in candidates if k not in out)


def stored(attributes: Attributes) -> dict[str, dict[str, str]]:
    """Attributes as a dead-letter record keeps them (JSON: a binary value in base64)."""
    return {
        k: {f: base64.b64encode(x).decode() if isinstance(x, bytes) else str(x) for f, x in v.items()}
        for k, v in attributes.items()
    }


def unstored(kept: dict[str, dict[str, str]]) -> Attributes:
    """Attributes a dead-letter record kept, as SQS takes them."""
    return {k: {f: base64.b64decode(x) if f == "BinaryValue" else x for f, x in v.items()} for k, v in kept.items()}


def original_id(m: Message) -> str:
    """The message id the service logged: sqs2pg's DLQ copy carries it as its deduplication id (a message SQS
    moved itself keeps its own id)."""
    return (m.deduplication_id or m.message_id) if m.attribute(ERROR_KIND_ATTRIBUTE) else m.message_id


def reason(m: Message) -> str:
    """Why a message is in the DLQ: the kind sqs2pg attached, or moved_by_sqs (SQS's own maxReceiveCount move)."""
    return m.attribute(ERROR_KIND_ATTRIBUTE) or "moved_by_sqs"


def error_text(m: Message) -> str:
    """The error sqs2pg attached to its copy ('' on a message SQS moved itself)."""
    return m.attribute(ERROR_ATTRIBUTE) or ""


def receives(m: Message) -> str:
    """How many times the source queue had handed the message out when it was dead-lettered ('?' if unknown)."""
    return m.attribute(RECEIVE_COUNT_ATTRIBUTE) or "?"


def for_source(m: Message) -> Attributes:
    """The attributes of a redriven copy. The idempotency key travels as an attribute: the redriven copy gets a
    new deduplication id. The copy is marked as redriven: sqs2pg applies it even though the key's record says
    dead-lettered (a redelivery of the original, unmarked, is only deleted)."""
    marker = {REDRIVE_ATTRIBUTE: {"DataType": "String", "StringValue": original_id(m)}}
    try:
        return {IDEMPOTENCY_ATTRIBUTE: {"DataType": "String", "StringValue": m.idempotency_key}, **marker}
    except PermanentError:
        return marker
