"""`sqs2pg check`: configuration, handler, database, migrations and each queue, one line per check."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from ..database_url import scrub
from ..db import migrate
from ..db.pool import describe_database_error
from ..errors import StartupError
from ..mapping import schema, spec
from ..observe import traces
from ..observe.metrics import Metrics
from ..sqs.client import Sqs
from .common import EXIT_FAILED, RAW, REQUIRED, Command


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="check configuration, handler, database, migrations and queues",
        formatter_class=RAW,
        description="Check configuration, handler, database (writer), migrations and each queue; "
        "one line per check, exit 1 if any failed.",
        epilog=REQUIRED,
    )
    return parser


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print one line per check; exit 1 if any failed."""
    from ..handler import load_handler

    failures = 0

    def report(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(scrub(f"{'ok  ' if ok else 'FAIL'}  {what}"), flush=True)

    report(True, f"configuration ({len(settings.queue_urls)} queue(s), database {settings.redacted_database_url()})")
    if traces.wanted():  # (set up by the CLI; off here means the otel extra is missing)
        state = traces.describe()
        report(
            state != "off",
            f"traces {state}" if state != "off" else "traces: OTEL_* asks for them: pip install 'sqs2pg[otel]'",
        )
    mapping = None
    try:
        if settings.mapping:
            mapping = spec.load(settings.mapping)
            report(True, f"mapping {settings.mapping} ({len(mapping.tables)} table rule(s))")
        else:
            load_handler(settings.handler)
            report(True, f"handler {settings.handler}")
    except StartupError as exc:
        for line in str(exc).splitlines():
            report(False, line)
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        report(False, f"database reachable: {describe_database_error(exc, settings.redacted_database_url())}")
        report(False, "migrations current: not checked, the database did not answer")
    else:
        try:
            report(True, "database reachable (writer)")
            current, head = await migrate.current_revision(conn), migrate.head_revision(settings)
            at = f"at {current}" if current else "not migrated"
            report(
                current == head,
                f"migrations current (database {at}, code at {head})"
                + ("" if current == head else ": run `sqs2pg migrate`"),
            )
            if mapping is not None:
                _, problems = await schema.inspect(conn, mapping)
                for problem in problems:
                    report(False, f"SQS2PG_MAPPING={mapping.path}: {problem}")
                if not problems:
                    report(True, f"mapping matches the database ({len(mapping.tables)} table rule(s))")
        finally:
            await conn.close()
    sqs = Sqs(settings, Metrics())
    try:
        await sqs.open()
        for url in settings.queue_urls:
            try:
                info = await sqs.describe(url)
                report(
                    True,
                    f"queue {info.name}: FIFO, dead-letter queue {info.dlq_url}"
                    f" (maxReceiveCount {info.max_receive_count})",
                )
            except StartupError as exc:
                report(False, str(exc))
    except StartupError as exc:
        report(False, str(exc))
    finally:
        await sqs.close()
    return EXIT_FAILED if failures else 0


COMMAND = Command("check", add_parser, run)
