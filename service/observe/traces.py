"""Traces: where one write went, as OpenTelemetry spans; off, and free, unless the OTEL_* variables ask for them.

Configured by the standard variables only (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, ...; the SDK reads them). Tracing
is on when the ``otel`` extra is installed (``pip install 'sqs2pg[otel]'``; the image has it), ``OTEL_SDK_DISABLED``
is not true, and ``OTEL_TRACES_EXPORTER`` names an exporter (not ``none``) or, unset, an OTLP endpoint is set.
Otherwise every function here is one check of a global and returns: nothing of OpenTelemetry is imported.

The spans (observe/otel.py makes them), one trace per write where the producer sent a context:
``receive QUEUE`` per ReceiveMessage call that brought messages (linked to each message's producer);
``process QUEUE`` per attempt at a message, the producer's span its parent, ending with the outcome;
``transaction DB`` for its database transaction (a shared one: one span, in a sampled write's trace, linked to
each other message's);
``delete QUEUE`` / ``release QUEUE`` for the SQS call that settled it; ``send DLQ`` for its dead-letter copy,
whose context the copy carries, so that a redrive joins the same trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import logs

if TYPE_CHECKING:
    from ..message import Message
    from .otel import Otel

# The message attributes a trace context travels in (W3C Trace Context), and SQS's own X-Ray header.
TRACE_ATTRIBUTES = ("traceparent", "tracestate")
XRAY_SYSTEM_ATTRIBUTE = "AWSTraceHeader"

_on: Otel | None = None  # set by setup() when tracing is on


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(environ: Mapping[str, str] = os.environ) -> str | None:
    """Turn tracing on where the environment asks for it. Returns a warning when it asks but the extra is not
    installed (then nothing is traced); raises StartupError for a setting that cannot work."""
    global _on
    if not wanted(environ):
        return None
    try:
        from . import otel
    except ImportError as exc:
        return (
            f"OTEL_* asks for traces but OpenTelemetry is not installed ({exc.name} missing): no traces are sent; "
            "pip install 'sqs2pg[otel]'"
        )
    _on = otel.Otel.from_environment(environ)
    return None


def describe() -> str:
    """One line on where traces go (`sqs2pg check`)."""
    return _on.describe() if _on is not None else "off"


def shutdown(timeout_s: float = 3.0) -> None:
    """Send what is buffered (at most ``timeout_s``) and stop. The last step of a stop."""
    global _on
    if _on is not None:
        _on.shutdown(timeout_s)
        _on = None


def enable(otel: Otel | None) -> None:
    """Use this tracer (tests: one with an in-memory exporter), or none."""
    global _on, _broken
    _on, _broken = otel, False


# --- hooks on the write path: each a no-op while tracing is off, and never an error for the write ---

_broken = False


def broken(exc: Exception) -> None:
    """Tracing itself failed (a bug here or in the SDK): said once, and the write goes on untraced."""
    global _broken
    if not _broken:
        _broken = True
        logs.event(
            logging.WARNING,
            "tracing failed: writes go on, some untraced",
            "trace",
            error=f"{type(exc).__name__}: {exc}"[:300],
        )


def _guarded(hook: Callable[..., None], *args: Any) -> None:
    """A hook of the tracer: a failure of its own never reaches the write (broken() says why, once)."""
    try:
        hook(*args)
    except Exception as exc:  # noqa: BLE001 - tracing never fails a write
        broken(exc)


def messaging(operation: str, kind: str, queue: str) -> dict[str, str]:
    """The messaging semantic conventions' attributes of an operation on a queue (every sqs2pg span names them)."""
    return {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
    }


def received(queue: str, messages: list[Message], started_ns: int, error: Exception | None = None) -> None:
    """A ReceiveMessage call that started at ``started_ns`` (time.time_ns) ended, bringing these messages."""
    if _on is not None and (messages or error is not None):
        _guarded(_on.received, queue, messages, started_ns, error)


def processing(messages: list[Message]) -> None:
    """An attempt at each message begins (a worker took them); a message's attempt already open goes on."""
    if _on is not None:
        _guarded(_on.processing, messages)


def transaction(messages: list[Message], database: str, purpose: str) -> contextlib.AbstractContextManager[Any]:
    """The span of one database transaction for these messages (``purpose``: ``apply`` them, or write their
    ``dead_letter_record``), to wrap around it."""
    if _on is None:
        return contextlib.nullcontext()
    return _on.transaction(messages, database, purpose)


def outcome(message: Message, outcome: str, error: Exception | None = None, **fields: Any) -> None:
    """The attempt ended with this outcome (settle.py's word): its process span ends."""
    if _on is not None:
        _guarded(_on.outcome, message, outcome, error, fields)


def not_tried(messages: list[Message]) -> None:
    """A run's messages not tried (an earlier one of their group failed): their attempt ends without an outcome."""
    if _on is not None and messages:
        _guarded(_on.not_tried, messages)


def settled(operation: str, messages: list[Message], started_ns: int, failed: Mapping[Any, str]) -> None:
    """An SQS call that settled messages (``delete``, ``release``) ran from ``started_ns`` (time.time_ns) until
    now; ``failed``: the messages it failed, with the reason."""
    if _on is not None and messages:
        _guarded(_on.settled, operation, messages, started_ns, failed)


@contextlib.contextmanager
def sending(message: Message, destination: str) -> Iterator[dict[str, dict[str, str]]]:
    """Around sending a copy of ``message`` (to its DLQ, or back from it): yields the trace attributes the copy
    carries. Tracing on: a ``send`` span, child of the message's attempt (else of its producer), injected. Off:
    the message's own trace attributes, so a copy never loses its trace."""
    if _on is None:
        yield carried(message)
        return
    with _on.sending(message, destination) as attributes:
        yield attributes


def carried(message: Message) -> dict[str, dict[str, str]]:
    """The W3C trace attributes the message carries (String ones), as SQS takes them."""
    out = {}
    for name in TRACE_ATTRIBUTES:
        value = message.attribute(name)
        if value is not None:
            out[name] = {"DataType": "String", "StringValue": value}
    return out


# --- the producer's side: the Producer is used inside other applications, so it traces with whatever
# OpenTelemetry SDK the process set up (theirs, or `sqs2pg send`'s from OTEL_*), never with the hooks above ---

PLACEHOLDER = {"traceparent": {"DataType": "String", "StringValue": f"00-{'0' * 31}1-{'0' * 15}1-01"}}


class Sends:
    """The send spans of one Producer.send_many call: one PRODUCER span per write, its context injected into the
    write's attributes; nothing (and nothing imported) when the process has no SDK set up."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.tracer: Any = None
        self.spans: list[Any] = []
        trace = sys.modules.get("opentelemetry.trace")  # no SDK can be set up where nothing imported the API
        if trace is None:
            return
        try:
            provider = trace.get_tracer_provider()
            if type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
                self.tracer = provider.get_tracer("sqs2pg.producer")
        except Exception as exc:  # noqa: BLE001 - tracing never fails a write
            broken(exc)

    def reserved(self) -> dict[str, dict[str, str]]:
        """Attributes standing for the trace context a write will carry (to check a write before it is sent)."""
        return PLACEHOLDER if self.tracer is not None else {}

    def start(self, attributes: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """A write's send span begins: the attributes that carry it (none when off, or when the write brings its
        own ``traceparent``: a caller propagating by hand is left alone)."""
        if self.tracer is None or "traceparent" in attributes:
            self.spans.append(None)
            return {}
        try:
            return self._start()
        except Exception as exc:  # noqa: BLE001 - tracing never fails a write: this one goes untraced
            broken(exc)
            self.spans.append(None)
            return {}

    def _start(self) -> dict[str, dict[str, str]]:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        span = self.tracer.start_span(
            f"send {self.queue}",
            kind=trace.SpanKind.PRODUCER,
            attributes=messaging("send", "send", self.queue),
        )
        self.spans.append(span)
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        return {name: {"DataType": "String", "StringValue": value} for name, value in carrier.items()}

    def end(self, results: list[Any]) -> None:
        """Each write's span ends: with its message id when sent, else as an error with the code SQS gave."""
        if self.tracer is None:
            return
        try:
            self._end(results)
        except Exception as exc:  # noqa: BLE001 - the writes went (or not) whatever their spans do
            broken(exc)

    def _end(self, results: list[Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        for i, span in enumerate(self.spans):
            if span is None:
                continue
            result = results[i] if i < len(results) else None
            message_id = getattr(result, "message_id", None)
            if message_id is not None:
                span.set_attribute("messaging.message.id", message_id)
            else:
                span.set_attribute("error.type", str(getattr(result, "code", "not_sent")))
                span.set_status(Status(StatusCode.ERROR, str(getattr(result, "reason", "not sent"))[:300]))
            span.end()
