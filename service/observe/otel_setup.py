"""The OpenTelemetry SDK's tracer provider, made from the OTEL_* variables (traces.py says which turn tracing on).

The SDK reads most of them itself: the endpoint, headers, timeout and TLS files (the exporter), the sampler
(OTEL_TRACES_SAMPLER), the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) and the batching (OTEL_BSP_*).
Decided here: OTLP without a protocol set is http/protobuf (the specification's default; the Python SDK's own
is grpc): the extra ships the HTTP exporter only, and grpc asks for its package by name.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib.metadata import entry_points
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .. import database_url
from ..errors import StartupError
from ..version import __version__

PROTOCOLS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
# The samplers the SDK's TracerProvider reads from OTEL_TRACES_SAMPLER (any other name, it warns and traces all)
SAMPLERS = (
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
)


def provider(environ: Mapping[str, str]) -> tuple[TracerProvider, str]:
    """A tracer provider exporting where OTEL_* says (batched), and where that is and how it samples, for a line."""
    made = exporters(environ)
    sampling = sampler(environ)
    tracer_provider = TracerProvider(resource=resource())  # the sampler: the SDK reads OTEL_TRACES_SAMPLER itself
    for exporter in made:
        try:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        except ValueError as exc:  # the SDK's own check of OTEL_BSP_*
            raise StartupError(f"OTEL_BSP_* settings: {exc}") from exc
    where = ", ".join(endpoint(environ) if type(e).__name__ == "OTLPSpanExporter" else type(e).__name__ for e in made)
    return tracer_provider, f"spans to {where or 'no exporter'}, sampler {sampling}"


def sampler(environ: Mapping[str, str]) -> str:
    """The sampler OTEL_TRACES_SAMPLER(_ARG) name, checked: where the SDK would only warn and trace every write
    (an unknown name; a ratio that is not a number from 0 to 1), StartupError says what to set instead."""
    name = (environ.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if name not in SAMPLERS:
        close = difflib.get_close_matches(name, SAMPLERS, 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise StartupError(f"OTEL_TRACES_SAMPLER={name!r} is not a sampler{hint}: use one of {', '.join(SAMPLERS)}")
    if not name.endswith("traceidratio"):
        return name
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "")
    try:
        ratio = float(arg)
    except ValueError:
        ratio = -1.0
    if not 0 <= ratio <= 1:
        raise StartupError(
            f"OTEL_TRACES_SAMPLER_ARG={arg!r}: {name} takes a ratio from 0 to 1 (0.05 keeps 5% of the traces that "
            "start here)"
        )
    return f"{name} {ratio:g}"


def headers(environ: Mapping[str, str]) -> None:
    """OTEL_EXPORTER_OTLP_(TRACES_)HEADERS checked (the SDK would log a malformed entry whole, key and all, and
    drop it), and each value hidden from every log line from now on."""
    for variable in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for i, entry in enumerate(environ.get(variable, "").split(","), 1):
            if not entry.strip():
                continue
            name, equals, value = entry.partition("=")
            if not equals or not name.strip():
                raise StartupError(
                    f"{variable}: entry {i} is not name=value (not shown, it may be a secret): use "
                    "name=value pairs separated by commas, e.g. authorization=Bearer%20TOKEN"
                )
            database_url.hide_secret(value.strip())


def exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (otlp when only an endpoint is set); StartupError when one cannot
    be made here."""
    headers(environ)
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
            known = sorted({"otlp" if n.startswith("otlp_proto") else n for n in installed} | {"none"})
            raise StartupError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides: use {', '.join(known)}"
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
