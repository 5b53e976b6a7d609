"""Traces (observe/traces.py, observe/otel.py) on the in-memory fakes, spans caught by the SDK's in-memory
exporter: what starts tracing, the context each source brings in, every span and attribute, the context a
dead-letter copy and a producer's write carry out, trace ids in log lines, and the path when tracing is off.
(tests/integration/test_traces.py sends them over OTLP/HTTP from real processes, on real emulators.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from sqs2pg.consume.app import App
from sqs2pg.errors import RetryableError, StartupError
from sqs2pg.message import Message
from sqs2pg.observe import otel, otel_setup, traces
from sqs2pg.producer import Producer, ProducerError, Write

from ..support.fakes import QUEUE_URL, FakeSqs, FakeStore
from ..support.helpers import make_settings, running, wait_until
from ..support.servers import ROOT

# A producer's context, as another service sends it: W3C, and the same in X-Ray's form.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
XRAY_TRACE_ID = "5759e988bd862e3fe1be46a994272793"
XRAY_HEADER = f"Root=1-{XRAY_TRACE_ID[:8]}-{XRAY_TRACE_ID[8:]};Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.enable(otel.Otel(provider))
    try:
        yield exporter
    finally:
        traces.enable(None)


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _named(exporter: InMemorySpanExporter, prefix: str) -> list[Any]:
    """The finished spans whose name starts so (typed loosely: the SDK's optional fields are set here)."""
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def _hex(span_id: int, width: int = 16) -> str:
    return format(span_id, f"0{width}x")


def _settings(**knobs: str):  # type: ignore[no-untyped-def]
    return make_settings("postgresql://fake@127.0.0.1:1/fake", [QUEUE_URL], **{"retry_base_s": "0", **knobs})


async def _drained(sqs: FakeSqs) -> bool:
    return not sqs.waiting()


# --- when tracing is on ---


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_where_otel_variables_ask_for_it(environ: dict[str, str], on: bool) -> None:
    assert traces.wanted(environ) is on


def test_exporters_follow_otel_variables_and_say_in_one_line_what_cannot_work() -> None:
    (http,) = otel_setup.exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert type(http).__name__ == "OTLPSpanExporter" and "http" in type(http).__module__  # the spec's default
    assert [type(e).__name__ for e in otel_setup.exporters({"OTEL_TRACES_EXPORTER": "console,none"})] == [
        "ConsoleSpanExporter"
    ]
    with pytest.raises(StartupError, match=r"grpc needs opentelemetry-exporter-otlp-proto-grpc.*http/protobuf"):
        otel_setup.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(StartupError, match="'http/json' is not an OTLP protocol"):
        otel_setup.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    with pytest.raises(StartupError, match="names 'jaeger', which no installed package provides: use console, n"):
        otel_setup.exporters({"OTEL_TRACES_EXPORTER": "jaeger"})
    # where the SDK would only warn and trace every write, a one-line refusal
    with pytest.raises(StartupError, match="'parentbased_traceidration' is not a sampler .did you mean parentbased_tr"):
        otel_setup.sampler({"OTEL_TRACES_SAMPLER": "parentbased_traceidration"})
    for arg in ("5%", "5", ""):
        with pytest.raises(StartupError, match="takes a ratio from 0 to 1"):
            otel_setup.sampler({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": arg})
    assert otel_setup.sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05"}) == (
        "traceidratio 0.05"
    )
    assert otel_setup.sampler({}) == "parentbased_always_on"
    assert otel_setup.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:secret@c.example:4318/?k=v"}) == (
        "https://c.example:4318/v1/traces"
    )


def test_the_service_is_named_sqs2pg_unless_otel_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert otel_setup.resource().attributes["service.name"] == "sqs2pg"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-writer")
    assert otel_setup.resource().attributes["service.name"] == "orders-writer"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_off_nothing_of_opentelemetry_is_imported_and_without_the_extra_a_warning_says_what_to_install() -> None:
    off = _python(
        "import sys; from sqs2pg.consume import app; from sqs2pg.observe import traces; import sqs2pg.producer\n"
        "assert traces.setup() is None and traces.describe() == 'off'\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == "[]"
    # The extra missing (its modules made unimportable), OTEL_* asking: no traces, one line saying what to do.
    missing = _python(
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from sqs2pg.observe import traces\n"
        "print(traces.setup()); print(traces.describe())",
        OTEL_TRACES_EXPORTER="otlp",
    )
    assert missing.returncode == 0, missing.stderr
    warning, state = missing.stdout.strip().splitlines()
    assert "pip install 'sqs2pg[otel]'" in warning and state == "off"


# --- context in, the spans, context out: on the fakes ---


async def test_a_producers_trace_continues_through_receive_process_and_delete(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    sqs = FakeSqs()
    sqs.send_message('{"n": 1}', "g1", "k1", {"traceparent": _string(TRACEPARENT), "tracestate": _string("v=1")})
    sqs.send_message('{"n": 2}', "g2", "k2", trace_header=XRAY_HEADER)  # as EventBridge and SNS pass it on
    sqs.send_message('{"n": 3}', "g3", "k3", {"traceparent": _string("00-nonsense")})  # not a context
    # an SNS envelope carries the producer's traceparent among its own message attributes
    sns = {
        "Type": "Notification",
        "MessageId": "sns-1",
        "TopicArn": "arn:aws:sns:us-east-1:1:t.fifo",
        "Message": '{"n": 4}',
        "MessageAttributes": {"traceparent": {"Type": "String", "Value": TRACEPARENT.replace(PARENT_ID, "1" * 16)}},
    }
    sqs.send_message(json.dumps(sns), "g4", "k4")
    # EventBridge puts no context in the event: it passes the PutEvents call's X-Ray header on as AWSTraceHeader
    event = {"id": "e-1", "source": "orders", "detail-type": "paid", "detail": {"n": 5}}
    sqs.send_message(json.dumps(event), "g5", "k5", trace_header=XRAY_HEADER.replace("Parent=5", "Parent=6"))
    caplog.set_level(logging.DEBUG, logger="sqs2pg")
    async with running(App(_settings(envelope="auto"), store=FakeStore(), sqs=sqs)):
        await wait_until(lambda: _drained(sqs), timeout_s=10, interval_s=0.01)
        await wait_until(lambda: len(_named(spans, "delete")) == 5, timeout_s=10, interval_s=0.01)

    process = {s.attributes["messaging.message.id"]: s for s in _named(spans, "process fake.fifo")}
    assert len(process) == 5
    w3c, xray, none, enveloped, eventbridge = (process[f"m{i}"] for i in range(5))
    # the producer's span is the parent: same trace, its span id
    assert _hex(w3c.context.trace_id, 32) == TRACE_ID and _hex(w3c.parent.span_id) == PARENT_ID
    assert w3c.parent.is_remote and w3c.context.trace_state.get("v") == "1"
    assert _hex(xray.context.trace_id, 32) == XRAY_TRACE_ID and _hex(xray.parent.span_id) == "53995c3f42cd8ad8"
    assert none.parent is None  # no valid context: a trace of its own
    assert _hex(enveloped.context.trace_id, 32) == TRACE_ID and _hex(enveloped.parent.span_id) == "1" * 16
    assert _hex(eventbridge.context.trace_id, 32) == XRAY_TRACE_ID
    assert _hex(eventbridge.parent.span_id) == "63995c3f42cd8ad8"
    for span in process.values():
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["messaging.system"] == "aws_sqs"
        assert span.attributes["messaging.operation.type"] == "process"
        assert span.attributes["messaging.destination.name"] == "fake.fifo"
        assert span.attributes["sqs2pg.outcome"] == "committed"
        assert span.attributes["sqs2pg.message_group_id"] in {"g1", "g2", "g3", "g4", "g5"}
        assert span.status.status_code is StatusCode.UNSET
        # linked to the receive that brought it
        (receive_link,) = span.links
        receive = next(s for s in _named(spans, "receive") if s.context.span_id == receive_link.context.span_id)
        assert receive.kind is SpanKind.CLIENT and receive.attributes["messaging.operation.type"] == "receive"
    # each receive links to the producers of what it brought
    linked = {(_hex(link.context.trace_id, 32)) for s in _named(spans, "receive") for link in s.links}
    assert {TRACE_ID, XRAY_TRACE_ID} <= linked
    # settling: the delete is a child of each message's process span, with the batch call's size
    for delete in _named(spans, "delete fake.fifo"):
        parent = next(s for s in process.values() if s.context.span_id == delete.parent.span_id)
        assert delete.context.trace_id == parent.context.trace_id
        assert delete.attributes["messaging.operation.type"] == "settle"
        assert delete.attributes["messaging.message.id"] == parent.attributes["messaging.message.id"]
    # every log line about the message carries the trace and span of its attempt
    committed: list[Any] = [r for r in caplog.records if r.getMessage() == "message committed"]
    committed = [r for r in committed if r.message_id == "m0"]
    assert committed and committed[0].trace_id == TRACE_ID and committed[0].span_id == _hex(w3c.context.span_id)


async def test_a_transient_failure_is_one_attempt_span_and_the_retry_another(spans: InMemorySpanExporter) -> None:
    sqs = FakeSqs()
    sqs.send_message('{"n": 1}', "g1", "k1", {"traceparent": _string(TRACEPARENT)})

    def fail(message: Message) -> Exception | None:
        return RetryableError("serialization failure", kind="serialization") if message.attempts == 0 else None

    async with running(App(_settings(), store=FakeStore(fail=fail), sqs=sqs)):
        await wait_until(lambda: _drained(sqs), timeout_s=10, interval_s=0.01)
    first, second = sorted(_named(spans, "process"), key=lambda s: s.start_time or 0)
    assert first.attributes["sqs2pg.outcome"] == "retried" and first.attributes["sqs2pg.attempt"] == 1
    assert first.status.status_code is StatusCode.ERROR and first.attributes["error.type"] == "serialization"
    assert second.attributes["sqs2pg.outcome"] == "committed" and second.attributes["sqs2pg.attempt"] == 2
    assert first.parent.span_id == second.parent.span_id == int(PARENT_ID, 16)  # both under the producer


async def test_a_runs_messages_behind_a_failure_end_their_attempt_untried_then_commit(
    spans: InMemorySpanExporter,
) -> None:
    sqs = FakeSqs()
    for seq in range(3):
        sqs.send_message(json.dumps({"seq": seq}), "g1", f"k{seq}")

    def fail(message: Message) -> Exception | None:
        first = json.loads(message.body)["seq"] == 0 and message.attempts == 0
        return RetryableError("serialization failure", kind="serialization") if first else None

    async with running(App(_settings(), store=FakeStore(fail=fail), sqs=sqs)):
        await wait_until(lambda: _drained(sqs), timeout_s=10, interval_s=0.01)
    by_message: dict[str, list[Any]] = {}
    for span in sorted(_named(spans, "process"), key=lambda s: s.start_time or 0):
        by_message.setdefault(str(span.attributes["messaging.message.id"]), []).append(span)
    assert [s.attributes.get("sqs2pg.outcome") for s in by_message["m0"]] == ["retried", "committed"]
    for later in ("m1", "m2"):  # held in memory behind m0: their first attempt ended untried, then they committed
        *untried, last = by_message[later]
        assert last.attributes["sqs2pg.outcome"] == "committed"
        assert all("sqs2pg.outcome" not in s.attributes and s.attributes["sqs2pg.not_tried"] for s in untried)


async def test_a_dead_letter_copy_carries_the_context_of_its_send_span_under_the_failed_attempt(
    spans: InMemorySpanExporter,
) -> None:
    sqs = FakeSqs()
    sqs.send_message("not json", "g1", "k1", {"traceparent": _string(TRACEPARENT)})
    async with running(App(_settings(), store=FakeStore(), sqs=sqs)):
        await wait_until(lambda: bool(sqs.dead), timeout_s=10, interval_s=0.01)
    (process,) = _named(spans, "process")
    assert process.attributes["sqs2pg.outcome"] == "dead_lettered"
    assert process.status.status_code is StatusCode.ERROR and process.attributes["error.type"] == "invalid_message"
    (send,) = _named(spans, "send")
    assert send.kind is SpanKind.PRODUCER and send.parent.span_id == process.context.span_id
    assert send.attributes["messaging.operation.type"] == "send"
    copied = sqs.dead[0].attributes["traceparent"]["StringValue"]
    assert copied.startswith(f"00-{TRACE_ID}-{_hex(send.context.span_id)}-")  # a redrive of it joins the trace


async def test_a_sampled_out_write_costs_no_spans_but_its_log_lines_still_name_its_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # follows the producer, who did not sample it
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.enable(otel.Otel(provider))
    try:
        sqs = FakeSqs()
        sqs.send_message('{"n": 1}', "g1", "k1", {"traceparent": _string(TRACEPARENT[:-2] + "00")})
        caplog.set_level(logging.DEBUG, logger="sqs2pg")
        async with running(App(_settings(), store=FakeStore(), sqs=sqs)):
            await wait_until(lambda: _drained(sqs), timeout_s=10, interval_s=0.01)
    finally:
        traces.enable(None)
    assert [s.name for s in exporter.get_finished_spans()] == []
    committed: list[Any] = [r for r in caplog.records if r.getMessage() == "message committed"]
    assert [r.trace_id for r in committed] == [TRACE_ID]


async def test_tracing_that_breaks_never_fails_a_write(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def start_span(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("an SDK bug")

    tracer = otel.Otel(TracerProvider())
    tracer.tracer = Broken()  # type: ignore[assignment]
    traces.enable(tracer)
    try:
        sqs = FakeSqs()
        sqs.send_message('{"n": 1}', "g1", "k1", {"traceparent": _string(TRACEPARENT)})
        sqs.send_message("not json", "g2", "k2", {"traceparent": _string(TRACEPARENT)})
        caplog.set_level(logging.INFO, logger="sqs2pg")
        store = FakeStore()
        async with running(App(_settings(), store=store, sqs=sqs)):
            await wait_until(lambda: _drained(sqs), timeout_s=10, interval_s=0.01)
    finally:
        traces.enable(None)
    assert [key for key, _, _ in store.applied] == ["k1"]
    assert [m.body for m in sqs.dead] == ["not json"]  # dead-lettered as ever, its context kept
    assert sqs.dead[0].attributes["traceparent"] == _string(TRACEPARENT)
    assert [r.getMessage() for r in caplog.records].count("tracing failed: writes go on, some untraced") == 1


def test_off_a_copy_keeps_the_trace_attributes_its_message_came_with() -> None:
    message = _message({"traceparent": _string(TRACEPARENT), "other": _string("x")})
    with traces.sending(message, "fake-dlq.fifo") as carried:
        assert carried == {"traceparent": _string(TRACEPARENT)}


# --- the producer: context out, within SQS's 10 attributes ---


def test_a_write_with_tracing_leaves_room_for_traceparent_or_is_refused_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = Producer("https://sqs.us-east-1.amazonaws.com/1/q.fifo", region="us-east-1")
    nine = {f"a{i}": "v" for i in range(9)}
    producer.validate(Write({}, "g", "k", nine))  # off: 9 of yours and idempotency_key make 10
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with pytest.raises(ProducerError, match=r"11 message attributes with idempotency_key and the trace context"):
        producer.validate(Write({}, "g", "k", nine))
    producer.validate(Write({}, "g", "k", dict(list(nine.items())[:8])))
    # a write carries its send span's context
    sends = traces.Sends("q.fifo")
    attributes = sends.start({})
    sends.end([type("Sent", (), {"message_id": "id-1"})()])
    (span,) = _named(exporter, "")
    assert span.name == "send q.fifo" and span.kind is SpanKind.PRODUCER
    assert attributes["traceparent"]["StringValue"].startswith(
        f"00-{_hex(span.context.trace_id, 32)}-{_hex(span.context.span_id)}-"
    )
    assert span.attributes["messaging.message.id"] == "id-1"
    # a caller that propagates by hand keeps its own
    assert traces.Sends("q.fifo").start({"traceparent": TRACEPARENT}) == {}


# --- what the review of the first version found ---


def _message(attributes: dict[str, Any], message_id: str = "m1") -> Message:
    raw = {
        "MessageId": message_id,
        "ReceiptHandle": "r",
        "Body": "{}",
        "Attributes": {"MessageGroupId": "g"},
        "MessageAttributes": attributes,
    }
    return Message.from_sqs(QUEUE_URL, raw, 30)


def test_a_copys_trace_context_never_takes_the_place_of_the_messages_own_attributes() -> None:
    from sqs2pg.errors import PermanentError
    from sqs2pg.sqs import deadletter

    error = PermanentError("bad", kind="handler")
    own = {"idempotency_key": _string("k1"), **{f"a{i}": _string("v") for i in range(6)}}
    injected = {"traceparent": _string(TRACEPARENT)}
    (_, ours, keep), *_ = deadletter.levels(_message(own), error)
    # no context of its own: the new one only where room is left after its own attributes
    sent, left_out = deadletter.merged(_message(own), ours, keep, trace=injected)
    assert len(sent) == 10 and "traceparent" not in sent and left_out == ["a5"]
    # a context of its own: renewed in its own slot, kept before its other attributes
    sent, left_out = deadletter.merged(_message({**own, "traceparent": _string("00-old")}), ours, keep, trace=injected)
    assert sent["traceparent"] == injected["traceparent"] and len(sent) == 10 and left_out == ["a4", "a5"]
    # a body near the size limit (its own attributes left out): the context stays
    (_, minimal, keep_minimal) = deadletter.levels(_message(own), error)[1]
    sent, _ = deadletter.merged(_message(own), minimal, keep_minimal, trace=injected)
    assert sent["traceparent"] == injected["traceparent"] and not any(k[0] == "a" for k in sent)


def test_an_attribute_named_traceparent_that_is_not_a_context_is_never_overwritten(
    spans: InMemorySpanExporter,
) -> None:
    binary = _message({"traceparent": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    with traces.sending(binary, "q-dlq.fifo") as attributes:
        assert attributes == {}
    valid = _message({"traceparent": _string(TRACEPARENT)})
    with traces.sending(valid, "q-dlq.fifo") as attributes:
        assert attributes["traceparent"]["StringValue"].startswith(f"00-{TRACE_ID}-")


def test_otlp_headers_are_checked_and_their_values_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    from sqs2pg import database_url

    with pytest.raises(StartupError) as refused:
        otel_setup.exporters({"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer s3cr3t-token"})
    assert "entry 1 is not name=value" in str(refused.value) and "s3cr3t" not in str(refused.value)
    otel_setup.exporters({"OTEL_EXPORTER_OTLP_HEADERS": "x-team=k3y-of-the-team,x-other=two%20words"})
    assert database_url.scrub("sent with k3y-of-the-team and two words") == "sent with *** and ***"


def test_a_shared_transaction_is_in_the_trace_of_a_sampled_write_and_none_is_made_when_none_is(
    spans: InMemorySpanExporter,
) -> None:
    sampled = _message({"traceparent": _string(TRACEPARENT)}, "m1")
    dropped = _message({"traceparent": _string(TRACEPARENT.replace(PARENT_ID, "2" * 16)[:-2] + "00")}, "m2")
    traces.processing([dropped, sampled])
    with traces.transaction([dropped, sampled], "db", "apply"):
        pass
    (shared,) = _named(spans, "transaction")
    assert _named(spans, "process") == []  # (the attempts are still open)
    assert shared.parent.span_id == sampled.trace.span.get_span_context().span_id
    assert [link.context.span_id for link in shared.links] == [dropped.trace.span.get_span_context().span_id]
    spans.clear()
    with traces.transaction([dropped], "db", "apply"):
        pass
    assert _named(spans, "transaction") == []


def test_with_no_room_a_writes_tracestate_goes_and_its_traceparent_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = Producer("https://sqs.us-east-1.amazonaws.com/1/q.fifo", region="us-east-1")
    trace_attributes = {"traceparent": _string(TRACEPARENT), "tracestate": _string("v=1")}
    entry = producer._entry(0, Write({}, "g", "k", {f"a{i}": "v" for i in range(8)}), trace_attributes)
    assert "traceparent" in entry["MessageAttributes"] and "tracestate" not in entry["MessageAttributes"]
    assert len(entry["MessageAttributes"]) == 10
