"""`sqs2pg run`: consume the queues until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import traceback
from typing import Any

from ..config import DEFAULT_HANDLER, PREFIX, Settings, knob_fields
from ..errors import StartupError
from ..observe import logs
from .common import EXIT_FAILED, RAW, REQUIRED, Command


def settings_help() -> str:
    """Every variable the service reads, with its default and meaning (`sqs2pg run --help`)."""
    lines = [
        REQUIRED,
        "",
        "optional environment:",
        "  HTTP_PORT (8080)  /metrics, /healthz, /readyz",
        f"  HANDLER ({DEFAULT_HANDLER})  import path of the handler: package.module:function",
        "  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, OTEL_* (off)  traces, OpenTelemetry's own variables",
    ]
    for f in knob_fields():
        lines.append(f"  {PREFIX}{f.name.upper()} ({f.default})  {f.metadata['doc']}")
    return "\n".join(lines)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="consume the queues until SIGTERM/SIGINT",
        formatter_class=RAW,
        description="Consume the queues until SIGTERM/SIGINT (exit 0 after a clean stop).",
        epilog=settings_help(),
    )
    return parser


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from ..consume.app import App, stop_on_signals

    app = App(settings)
    with stop_on_signals(app):
        try:
            await app.run()
        except StartupError:
            raise
        except Exception as exc:
            if not app.has_started:
                raise
            # A crash after start: the service stops (the TaskGroup cancelled everything else); exit 1.
            logs.event(
                logging.ERROR,
                "crashed",
                "stop",
                error=f"{type(exc).__name__}: {exc}"[:500],
                exception="".join(traceback.format_exception(exc))[-4000:],
            )
            return EXIT_FAILED
    return 0


COMMAND = Command("run", add_parser, run)
