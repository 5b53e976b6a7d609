"""A received SQS message, as handlers and the rest of sqs2pg see it."""

from __future__ import annotations

import decimal
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .envelope import InvalidEnvelope, open_body
from .errors import InvalidMessage

# The message attributes sqs2pg reads and writes, all named here.
IDEMPOTENCY_ATTRIBUTE = "idempotency_key"
RESERVED_PREFIX = "sqs2pg_"  # attributes sqs2pg writes itself; a producer's attribute never starts so
# on a message `sqs2pg drill` sends: the drill's run id (applied to sqs2pg_drill, never to the handler)
DRILL_ATTRIBUTE = "sqs2pg_drill"
# on a DLQ copy sqs2pg sends (sqs/deadletter.py): why it was dead-lettered, and from where
ERROR_KIND_ATTRIBUTE = "sqs2pg_error_kind"
ERROR_ATTRIBUTE = "sqs2pg_error"
RECEIVE_COUNT_ATTRIBUTE = "sqs2pg_receive_count"
SOURCE_QUEUE_ATTRIBUTE = "sqs2pg_source_queue"
# on a copy `sqs2pg dlq redrive` sends back to the source queue: the DLQ message it came from
REDRIVE_ATTRIBUTE = "sqs2pg_redriven_from"
MAX_KEY_LENGTH = 512
MAX_ATTRIBUTES = 10  # SQS takes at most this many message attributes per message
SQS_ID = re.compile(r"[\x21-\x7e]{1,128}")  # what SQS accepts as a group or deduplication id


class _NotJson:
    """What the body is when it is not JSON sqs2pg can parse, and why."""

    def __init__(self, why: str) -> None:
        self.why = why


def _integer(text: str) -> int | decimal.Decimal:
    return int(text) if len(text) <= 4000 else decimal.Decimal(text)


def dedup_id(key: str) -> str:
    """The MessageDeduplicationId for an idempotency key: the key itself when SQS accepts it, else its SHA-256."""
    return key if SQS_ID.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()


def size_of(body: str, attributes: Mapping[str, Mapping[str, str]]) -> int:
    """The size SQS counts against MaximumMessageSize: the body and each attribute's name, type and value."""
    return len(body.encode()) + sum(
        len(name.encode()) + len(a["DataType"].encode()) + len(a["StringValue"].encode())
        for name, a in attributes.items()
    )


def queue_name(url: str) -> str:
    """The queue's name, from its URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def _key(attributes: dict[str, Any], envelope_key: str | None, deduplication_id: str | None) -> str:
    """The idempotency key from these attributes (the ``idempotency_key`` String attribute), else the envelope's
    key, else the deduplication id; InvalidMessage when there is none or it is malformed."""
    attr = attributes.get(IDEMPOTENCY_ATTRIBUTE)
    if attr is not None:
        if attr.get("DataType", "").split(".", 1)[0] != "String" or "StringValue" not in attr:
            raise InvalidMessage(f"attribute {IDEMPOTENCY_ATTRIBUTE} must be of type String")
        key = attr["StringValue"]
    elif envelope_key:
        key = envelope_key
    elif deduplication_id:
        key = deduplication_id
    else:
        raise InvalidMessage(f"no {IDEMPOTENCY_ATTRIBUTE} attribute and no MessageDeduplicationId")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidMessage(f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters")
    return str(key)


@dataclass(eq=False)
class Message:
    queue_url: str
    queue_name: str
    message_id: str
    receipt_handle: str
    body: str
    group_id: str
    deduplication_id: str | None
    receive_count: int
    sent_timestamp_ms: int | None
    attributes: dict[str, Any]  # message attributes: name -> {"DataType": ..., "StringValue"/"BinaryValue": ...}
    # SQS's SequenceNumber: the message's place in its group (FIFO queues; None where a server gives none)
    sequence_number: int | None = None
    queue_created: int = 0  # the queue's CreatedTimestamp: a queue made again numbers its messages afresh
    # how its group's order is checked (consume/order.py judges the server): "sequence" (its SequenceNumbers
    # were seen to increase), "sent" (they were not: by SentTimestamp), "none" (not judged yet: by both)
    order: str = "none"
    received_at: float = field(default_factory=time.monotonic)  # when we received it (monotonic seconds)
    attempts: int = 0  # transient failures so far, each tried again in place (consume/policy.py)
    visible_until: float = 0.0  # monotonic time our hold on it ends unless extended
    handed_back: bool = False  # being released or retried: the heartbeat must not extend it any more
    # SQS2PG_ENVELOPE opened an SNS or EventBridge envelope: body and attributes are its inner message, and
    # ``on_queue`` the body and attributes as SQS holds them (what a dead-letter copy carries)
    envelope: str | None = None
    on_queue: tuple[str, dict[str, Any]] | None = None
    envelope_key: str | None = None  # the envelope's own key (EventBridge's event id)
    envelope_error: InvalidEnvelope | None = None  # the body says it is an envelope but is not a valid one
    trace_header: str | None = None  # SQS's AWSTraceHeader system attribute (X-Ray's trace context), if any
    trace: Any = None  # while tracing is on: its place in the trace (observe/otel.py), else None

    @classmethod
    def from_sqs(
        cls,
        queue_url: str,
        raw: dict[str, Any],
        visibility_timeout_s: int,
        envelope_mode: str = "none",
        queue_created: int = 0,
    ) -> Message:
        attrs = raw.get("Attributes", {})
        sent = attrs.get("SentTimestamp")
        sequence = attrs.get("SequenceNumber")
        now = time.monotonic()
        message = cls(
            queue_url=queue_url,
            queue_name=queue_name(queue_url),
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            group_id=attrs.get("MessageGroupId", ""),
            deduplication_id=attrs.get("MessageDeduplicationId"),
            receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
            sent_timestamp_ms=int(sent) if sent and sent.isdigit() else None,
            sequence_number=int(sequence) if isinstance(sequence, str) and sequence.isdigit() else None,
            queue_created=queue_created,
            attributes=raw.get("MessageAttributes", {}),
            trace_header=attrs.get("AWSTraceHeader"),
            received_at=now,
            visible_until=now + visibility_timeout_s,
        )
        if envelope_mode != "none":
            message.open_envelope(envelope_mode)
        return message

    def open_envelope(self, mode: str) -> None:
        """Replace body and attributes by the envelope's inner message (envelope.py); a malformed envelope is
        kept as ``envelope_error``, raised when the message is applied. A drill message has no envelope."""
        if DRILL_ATTRIBUTE in self.attributes:
            return
        try:
            opened = open_body(self.body, mode)
        except InvalidEnvelope as exc:
            self.envelope_error = exc
            return
        if opened is None:
            return
        self.on_queue = (self.body, self.attributes)
        self.envelope, self.body, self.envelope_key = opened.kind, opened.body, opened.key
        # the queue's own attributes win: a redriven copy carries sqs2pg's attributes beside the envelope. An
        # envelope's own sqs2pg_* attributes are dropped: only sqs2pg writes those, on the queue (a producer
        # could otherwise route a write to the drill table, or mark it redriven)
        inner = {k: v for k, v in opened.attributes.items() if not k.startswith(RESERVED_PREFIX)}
        self.attributes = {**inner, **self.attributes}

    @property
    def order_keys(self) -> tuple[int | None, int | None]:
        """(SequenceNumber, SentTimestamp) its group's order is checked by (db/records.py): the first where the
        server's numbers were seen in order, the second where they were not, both (they must agree) before the
        server was judged."""
        if self.order == "sequence":
            return self.sequence_number, None
        if self.order == "sent":
            return None, self.sent_timestamp_ms
        if self.sequence_number is None or self.sent_timestamp_ms is None:
            return None, None
        return self.sequence_number, self.sent_timestamp_ms

    @property
    def queue_body(self) -> str:
        """The body as it is on the queue (the envelope, when one was opened)."""
        return self.on_queue[0] if self.on_queue else self.body

    @property
    def queue_attributes(self) -> dict[str, Any]:
        """The message attributes as they are on the queue (without those from an opened envelope)."""
        return self.on_queue[1] if self.on_queue else self.attributes

    @cached_property
    def idempotency_key(self) -> str:
        """The ``idempotency_key`` String attribute when present (an SNS envelope's included), else an EventBridge
        envelope's event id, else the MessageDeduplicationId. InvalidEnvelope when the envelope is malformed:
        such a message is never applied."""
        if self.envelope_error is not None:
            raise self.envelope_error
        return _key(self.attributes, self.envelope_key, self.deduplication_id)

    @property
    def recorded_key(self) -> str | None:
        """The key this message's outcome is recorded under: its idempotency key; for a malformed envelope, which
        has no inner key, the key the queue message itself carries (its ``idempotency_key`` attribute, else its
        deduplication id), so that `sqs2pg status` reports it dead-lettered. None when it has no valid key."""
        try:
            if self.envelope_error is None:
                return self.idempotency_key
            return _key(self.queue_attributes, None, self.deduplication_id)
        except InvalidMessage:
            return None

    @cached_property
    def body_sha256(self) -> bytes:
        return hashlib.sha256(self.body.encode("utf-8", "surrogatepass")).digest()

    @cached_property
    def _parsed(self) -> Any:
        try:
            # an integer longer than Python parses by default (4,300 digits: a guard against slow parsing) is kept
            # exact as a Decimal, as PostgreSQL's jsonb keeps it
            return json.loads(self.body, parse_int=_integer)
        except RecursionError:
            return _NotJson("body is valid JSON nested deeper than sqs2pg parses (about 1,000 levels)")
        except ValueError:
            return _NotJson("body is not valid JSON")

    @property
    def is_json(self) -> bool:
        return not isinstance(self._parsed, _NotJson)

    @property
    def json(self) -> Any:
        """The body parsed as JSON; InvalidMessage when it is not JSON (or nests deeper than Python parses)."""
        if isinstance(self._parsed, _NotJson):
            raise InvalidMessage(self._parsed.why)
        return self._parsed

    @cached_property
    def values(self) -> frozenset[str]:
        """What of the body an error could quote: its strings of 3 characters or more and numbers of 4 digits or more,
        or the whole body when it is not JSON (errors.without_values keeps them out of what leaves sqs2pg)."""
        if not self.is_json:
            return frozenset([self.body[:10_000]] if len(self.body) >= 3 else [])
        found: set[str] = set()
        stack = [self._parsed]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
            elif isinstance(value, str) and len(value) >= 3:
                found.add(value)
            elif isinstance(value, int | float) and not isinstance(value, bool) and len(str(value)) >= 4:
                found.add(str(value))
        return frozenset(found)

    @property
    def redriven(self) -> bool:
        """A copy moved back from the dead-letter queue: by `sqs2pg dlq redrive` (REDRIVE_ATTRIBUTE), or by SQS's
        own DLQ redrive (it keeps the attributes sqs2pg put on the dead-letter copy)."""
        return REDRIVE_ATTRIBUTE in self.attributes or ERROR_KIND_ATTRIBUTE in self.attributes

    def attribute(self, name: str) -> str | None:
        """A String or Number message attribute's value, or None."""
        attr = self.attributes.get(name)
        return attr.get("StringValue") if attr else None

    def log_fields(self) -> dict[str, Any]:
        """Identifying fields for a log line: never the body. While tracing, the trace and span of its attempt."""
        fields = {
            "queue": self.queue_name,
            "message_id": self.message_id,
            "group": self.group_id,
            "receive_count": self.receive_count,
        }
        if self.trace is not None:
            fields.update(self.trace.ids)
        return fields
