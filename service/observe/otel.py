"""The OpenTelemetry half of traces.py: the exporters the OTEL_* variables name, and the spans themselves.

Imported only when tracing is on (it needs the ``otel`` extra). The SDK reads the rest of the OTEL_* variables
itself: the endpoint, headers, timeout and TLS files (the exporter), the sampler (OTEL_TRACES_SAMPLER), the
resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) and the batching (OTEL_BSP_*).

Decided here:
- A process span's parent is the producer's context (the ``traceparent`` attribute, else SQS's
  ``AWSTraceHeader``): each message is processed on its own, so the write's trace runs from the producer's
  send to the row in one tree, which is what a trace view (X-Ray's included) shows; the receive span that
  brought it is a link (a receive brings messages of many traces).
- A transaction of one message is a child of its process span; a shared one is one span linked to each.
- A settling call (a DeleteMessageBatch, a hand-back) is one short span under each message's process span, with
  the call's start and end, so each write's trace shows its own delete.
- OTLP without a protocol set is http/protobuf (the specification's default; the Python SDK's own is grpc):
  the extra ships the HTTP exporter only.
- Span attributes carry ids, never a body, an attribute value or an idempotency key (as the logs).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..errors import StartupError, classify
from ..message import Message
from ..version import __version__

W3C = TraceContextTextMapPropagator()
XRAY = AwsXRayPropagator()
ROOT = Context()  # a span started in the empty context begins a new trace
PROTOCOLS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
FAILED_OUTCOMES = ("retried", "dead_lettered")  # an attempt that ended so failed (its span's status is ERROR)


def exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (otlp when only an endpoint is set); StartupError when one cannot
    be made here."""
    names = [n.strip().lower() for n in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",") if n.strip()]
    installed = {ep.name: ep for ep in entry_points(group="opentelemetry_traces_exporter")}
    made = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in PROTOCOLS:
                raise StartupError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not an OTLP protocol: use http/protobuf or grpc"
                )
            name = PROTOCOLS[protocol]
        entry = installed.get(name)
        if entry is None and name == "otlp_proto_grpc":
            raise StartupError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc, which sqs2pg[otel] "
                "leaves out: pip install it, or use http/protobuf (the collector's port 4318)"
            )
        if entry is None:
            raise StartupError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides "
                f"(installed: {', '.join(sorted(installed))}, none)"
            )
        try:
            made.append(entry.load()())
        except Exception as exc:  # noqa: BLE001 - the SDK's own reading of OTEL_* failed: one line
            raise StartupError(f"OTEL_* settings for the {name} exporter: {type(exc).__name__}: {exc}") from exc
    return made


def resource() -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), named sqs2pg unless they name it."""
    found = Resource.create({"service.version": __version__})
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": "sqs2pg"}))
    return found


def endpoint(environ: Mapping[str, str]) -> str:
    """Where OTLP spans go, for a log line: scheme, host, port and path only (no credentials, no query)."""
    signal = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    parts = urlsplit(signal or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
    path = parts.path if signal else parts.path.rstrip("/") + "/v1/traces"
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{path}"


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
    parent = message.attribute("traceparent")
    if parent:
        carrier = {"traceparent": parent}
        if state := message.attribute("tracestate"):
            carrier["tracestate"] = state
        ctx = W3C.extract(carrier, context=ROOT)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    if message.trace_header:
        ctx = XRAY.extract({TRACE_HEADER_KEY: message.trace_header}, context=ROOT)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    return None


def _messaging(operation: str, kind: str, queue: str) -> dict[str, Any]:
    return {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
    }


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
        made = exporters(environ)
        provider = TracerProvider(resource=resource())  # the sampler from OTEL_TRACES_SAMPLER
        for exporter in made:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        # Global too: the Producer (`sqs2pg send`) and a handler's own spans use it.
        trace.set_tracer_provider(provider)
        where = ", ".join(
            endpoint(environ) if type(e).__name__ == "OTLPSpanExporter" else type(e).__name__ for e in made
        )
        return cls(provider, where)

    def describe(self) -> str:
        sampler = self.provider.sampler.get_description()
        return f"on: spans to {self._where or 'no exporter'}, sampler {sampler}"

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
            attributes={**_messaging("receive", "receive", queue), "messaging.batch.message_count": len(messages)},
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
                    **_messaging("process", "process", m.queue_name),
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
    def transaction(self, messages: list[Message], database: str) -> Iterator[Span]:
        attempts = [m.trace.span for m in messages if m.trace is not None and m.trace.open and m.trace.span]
        if len(messages) == 1 and attempts:
            context, links = trace.set_span_in_context(attempts[0], ROOT), []
        else:
            context, links = ROOT, [Link(s.get_span_context()) for s in attempts]
        span = self.tracer.start_span(
            f"transaction {database}",
            context=context,
            kind=SpanKind.CLIENT,
            links=links,
            attributes={
                "db.system.name": "postgresql",
                "db.namespace": database,
                "messaging.batch.message_count": len(messages),
            },
        )
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
            if m.trace is None or m.trace.span is None:
                continue
            span = self.tracer.start_span(
                f"{operation} {m.queue_name}",
                context=trace.set_span_in_context(m.trace.span, ROOT),
                kind=SpanKind.CLIENT,
                start_time=started_ns,
                attributes={
                    **_messaging(operation, "settle", m.queue_name),
                    "messaging.message.id": m.message_id,
                    "messaging.batch.message_count": len(messages),
                },
            )
            if m in failed:
                _failed(span, "sqs", failed[m][:300])
            span.end(end_time=ended)

    @contextlib.contextmanager
    def sending(self, message: Message, destination: str) -> Iterator[dict[str, dict[str, str]]]:
        t = message.trace
        if t is not None and t.span is not None:
            context = trace.set_span_in_context(t.span, ROOT)
        else:  # a DLQ message being redriven: its own context
            context = creation(message) or ROOT
        span = self.tracer.start_span(
            f"send {destination}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes={**_messaging("send", "send", destination), "sqs2pg.message_group_id": message.group_id},
        )
        carrier: dict[str, str] = {}
        W3C.inject(carrier, context=trace.set_span_in_context(span, ROOT))
        try:
            yield {name: {"DataType": "String", "StringValue": value} for name, value in carrier.items()}
        except BaseException as exc:
            _failed(span, _kind(exc))
            raise
        finally:
            span.end()
