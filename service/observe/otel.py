"""The OpenTelemetry half of traces.py: the spans themselves (otel_setup.py makes the SDK's tracer provider from
the OTEL_* variables). Imported only when tracing is on (it needs the ``otel`` extra).

Decided here:
- A process span's parent is the producer's context (the ``traceparent`` attribute, else SQS's
  ``AWSTraceHeader``): each message is processed on its own, so the write's trace runs from the producer's
  send to the row in one tree, which is what a trace view (X-Ray's included) shows; the receive span that
  brought it is a link (a receive brings messages of many traces).
- A transaction is a child of its message's process span; a shared one, of the first sampled message's, and
  linked to each of the others (they are in other traces). With no sampled message, it is not made.
- A settling call (a DeleteMessageBatch, a hand-back) is one short span under each message's process span, with
  the call's start and end, so each write's trace shows its own delete.
- An attempt that was sampled out gets no child spans (the parent-based samplers would drop them): at a low
  ratio, tracing costs little more than the attempt span itself.
- Span attributes carry ids, never a body, an attribute value or an idempotency key (as the logs).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..errors import classify
from ..message import Message
from ..version import __version__
from . import otel_setup, traces

W3C = TraceContextTextMapPropagator()
XRAY = AwsXRayPropagator()
ROOT = Context()  # a span started in the empty context begins a new trace
FAILED_OUTCOMES = ("retried", "dead_lettered")  # an attempt that ended so failed (its span's status is ERROR)


class _Trace:
    """A message's place in tracing: its producer's context, the receive that brought it, its current attempt."""

    __slots__ = ("parent", "receive", "span", "open", "ids")

    def __init__(self, parent: Context | None) -> None:
        self.parent = parent
        self.receive: SpanContext | None = None
        self.span: Span | None = None  # the attempt's process span (ended once ``open`` is False)
        self.open = False
        self.ids: dict[str, str] = {}  # trace_id and span_id of the attempt, for its log lines


def creation(message: Message) -> Context | None:
    """The producer's context: a W3C ``traceparent`` attribute (an SNS envelope's included), else SQS's
    ``AWSTraceHeader`` (X-Ray's format, which EventBridge and SNS pass on); None when neither is valid."""
    if (ctx := _w3c(message)) is not None:
        return ctx
    if message.trace_header:
        ctx = XRAY.extract({TRACE_HEADER_KEY: message.trace_header}, context=ROOT)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return None


def _w3c(message: Message) -> Context | None:
    """The context of the message's W3C ``traceparent`` (and ``tracestate``) String attributes, when valid."""
    parent = message.attribute("traceparent")
    if not parent:
        return None
    carrier = {"traceparent": parent}
    if state := message.attribute("tracestate"):
        carrier["tracestate"] = state
    ctx = W3C.extract(carrier, context=ROOT)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _failed(span: Span, kind: str, text: str | None = None) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, text))


def _kind(exc: BaseException) -> str:
    if not isinstance(exc, Exception):
        return "cancelled"
    return getattr(exc, "trace_kind", None) or classify(exc).kind


class Otel:
    def __init__(self, provider: TracerProvider, where: str = "") -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("sqs2pg", __version__)
        self._where = where

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Otel:
        provider, where = otel_setup.provider(environ)
        # Global too: the Producer (`sqs2pg send`) and a handler's own spans use it.
        trace.set_tracer_provider(provider)
        return cls(provider, where)

    def describe(self) -> str:
        return f"on: {self._where}"

    def shutdown(self, timeout_s: float) -> None:
        # On a thread of its own: a collector that does not answer must not hold the stop past timeout_s.
        worker = threading.Thread(target=self.provider.shutdown, name="traces-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)

    def received(self, queue: str, messages: list[Message], started_ns: int, error: Exception | None) -> None:
        links = []
        for m in messages:
            m.trace = _Trace(creation(m))
            if m.trace.parent is not None:
                links.append(Link(trace.get_current_span(m.trace.parent).get_span_context()))
        span = self.tracer.start_span(
            f"receive {queue}",
            context=ROOT,
            kind=SpanKind.CLIENT,
            start_time=started_ns,
            links=links,
            attributes={
                **traces.messaging("receive", "receive", queue),
                "messaging.batch.message_count": len(messages),
            },
        )
        if error is not None:
            _failed(span, _kind(error))
        span.end()
        for m in messages:
            m.trace.receive = span.get_span_context()

    def processing(self, messages: list[Message]) -> None:
        for m in messages:
            t = m.trace
            if t is None:
                t = m.trace = _Trace(creation(m))
            elif t.open:
                continue  # held while the database was away: the same attempt goes on
            span = self.tracer.start_span(
                f"process {m.queue_name}",
                context=t.parent or ROOT,
                kind=SpanKind.CONSUMER,
                links=[Link(t.receive)] if t.receive is not None else [],
                attributes={
                    **traces.messaging("process", "process", m.queue_name),
                    "messaging.message.id": m.message_id,
                    "sqs2pg.message_group_id": m.group_id,
                    "sqs2pg.receive_count": m.receive_count,
                    "sqs2pg.attempt": m.attempts + 1,
                },
            )
            t.span, t.open = span, True
            context = span.get_span_context()
            t.ids = {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}

    @contextlib.contextmanager
    def transaction(self, messages: list[Message], database: str, purpose: str) -> Iterator[Span]:
        try:
            span = self._transaction(messages, database, purpose)
        except Exception as exc:  # noqa: BLE001 - tracing never fails a write
            traces.broken(exc)
            span = INVALID_SPAN
        if span is INVALID_SPAN:  # sampled out, or broken: the transaction goes on untraced
            yield span
            return
        try:
            # Current while the handler runs: a handler's own spans (or an asyncpg instrumentation's) nest here.
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                yield span
        except BaseException as exc:
            kind = _kind(exc)
            if kind == "separately":  # rolled back on purpose: each message is then applied on its own
                span.set_attribute("sqs2pg.then", "one by one")
            else:
                _failed(span, kind)
            raise
        finally:
            span.end()

    def _transaction(self, messages: list[Message], database: str, purpose: str) -> Span:
        attempts = [m.trace.span for m in messages if m.trace is not None and m.trace.open and m.trace.span]
        sampled = [s for s in attempts if s.get_span_context().trace_flags.sampled]
        if attempts and not sampled:
            return INVALID_SPAN  # every attempt sampled out: so would its child be (the samplers follow parents)
        if sampled:  # in the trace of the first sampled write, linked to the others
            context = trace.set_span_in_context(sampled[0], ROOT)
            links = [Link(s.get_span_context()) for s in attempts if s is not sampled[0]]
        else:  # messages with no attempt open (not seen here): a trace of its own
            context, links = ROOT, []
        return self.tracer.start_span(
            f"transaction {database}".rstrip(),
            context=context,
            kind=SpanKind.CLIENT,
            links=links,
            attributes={
                "db.system.name": "postgresql",
                "db.namespace": database,
                "messaging.batch.message_count": len(messages),
                "sqs2pg.transaction": purpose,
            },
        )

    def outcome(self, message: Message, outcome: str, error: Exception | None, fields: Mapping[str, Any]) -> None:
        if message.trace is None or not message.trace.open:
            self.processing([message])  # released before any attempt (a stop): its span says so
        t = message.trace
        assert t is not None and t.span is not None
        span = t.span
        span.set_attribute("sqs2pg.outcome", outcome)
        for name, value in fields.items():
            if isinstance(value, str | int | float | bool):
                span.set_attribute(f"sqs2pg.{name}", value)
        if error is not None:
            kind = str(getattr(error, "kind", type(error).__name__))
            if outcome in FAILED_OUTCOMES:
                _failed(span, kind, str(error)[:300])
            else:
                span.set_attribute("error.type", kind)
        span.end()
        t.open = False

    def not_tried(self, messages: list[Message]) -> None:
        for m in messages:
            if m.trace is not None and m.trace.open and m.trace.span is not None:
                m.trace.span.set_attribute("sqs2pg.not_tried", "an earlier message of its group failed")
                m.trace.span.end()
                m.trace.open = False

    def settled(self, operation: str, messages: list[Message], started_ns: int, failed: Mapping[Any, str]) -> None:
        ended = time.time_ns()
        for m in messages:
            if m.trace is None or m.trace.span is None or not m.trace.span.get_span_context().trace_flags.sampled:
                continue  # (sampled out: its child would be too)
            span = self.tracer.start_span(
                f"{operation} {m.queue_name}",
                context=trace.set_span_in_context(m.trace.span, ROOT),
                kind=SpanKind.CLIENT,
                start_time=started_ns,
                attributes={
                    **traces.messaging(operation, "settle", m.queue_name),
                    "messaging.message.id": m.message_id,
                    "messaging.batch.message_count": len(messages),
                },
            )
            if m in failed:
                _failed(span, "sqs", failed[m][:300])
            span.end(end_time=ended)

    @contextlib.contextmanager
    def sending(self, message: Message, destination: str) -> Iterator[dict[str, dict[str, str]]]:
        try:
            span, attributes = self._sending(message, destination)
        except Exception as exc:  # noqa: BLE001 - tracing never fails a write: the copy keeps what it came with
            traces.broken(exc)
            yield traces.carried(message)
            return
        try:
            yield attributes
        except BaseException as exc:
            _failed(span, _kind(exc))
            raise
        finally:
            span.end()

    def _sending(self, message: Message, destination: str) -> tuple[Span, dict[str, dict[str, str]]]:
        t = message.trace
        if t is not None and t.span is not None:
            context = trace.set_span_in_context(t.span, ROOT)
        else:  # a DLQ message being redriven: its own context
            context = creation(message) or ROOT
        span = self.tracer.start_span(
            f"send {destination}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes={**traces.messaging("send", "send", destination), "sqs2pg.message_group_id": message.group_id},
        )
        own = message.attributes.get("traceparent")
        if own is not None and (own.get("DataType") != "String" or _w3c(message) is None):
            return span, {}  # an attribute of that name that is not a trace context: the copy keeps it as it is
        carrier: dict[str, str] = {}
        W3C.inject(carrier, context=trace.set_span_in_context(span, ROOT))
        return span, {name: {"DataType": "String", "StringValue": value} for name, value in carrier.items()}
