"""The command line: `sqs2pg run | migrate | check`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Coroutine

import asyncpg
import uvloop

from . import config, logs, migrate
from .config import ConfigError, Settings
from .handler import load_handler
from .metrics import Metrics
from .sqs import QueueError, Sqs
from .store import connect_kwargs

EXIT_CONFIG = 2  # configuration or environment unusable: restarting will not help


async def _run(settings: Settings) -> int:
    from .app import App, stop_on_signals

    app = App(settings)
    with stop_on_signals(app):
        await app.run()
    return 0


async def _check(settings: Settings) -> int:
    """Print one line per check; exit 1 if any failed."""
    failures = 0

    def report(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  {what}", flush=True)

    report(True, f"configuration ({len(settings.queue_urls)} queue(s), database {settings.redacted_database_url()})")
    try:
        load_handler(settings.handler)
        report(True, f"handler {settings.handler}")
    except ValueError as exc:
        report(False, str(exc))
    try:
        conn = await asyncpg.connect(**connect_kwargs(settings))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        report(False, f"database reachable: {type(exc).__name__}: {exc}")
    else:
        try:
            report(True, "database reachable (writer)")
            current, head = await migrate.current_revision(conn), migrate.head_revision(settings)
            report(current == head, f"migrations current (database at {current}, code at {head})")
        finally:
            await conn.close()
    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        for url in settings.queue_urls:
            try:
                info = await sqs.describe(url)
                report(True, f"queue {info.name}: FIFO, dead-letter queue {info.dlq_url} (maxReceiveCount {info.max_receive_count})")
            except (QueueError, Exception) as exc:  # noqa: BLE001
                report(False, f"queue {url}: {exc}")
    finally:
        await sqs.close()
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqs2pg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consume the queues until SIGTERM/SIGINT")
    sub.add_parser("migrate", help="apply the database migrations up to head")
    sub.add_parser("check", help="check configuration, database, migrations and queues")
    args = parser.parse_args(argv)

    try:
        settings = config.load()
    except ConfigError as exc:
        print(f"sqs2pg: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(settings.log_level)

    if args.command == "migrate":
        try:
            migrate.upgrade(settings)
        except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
            print(f"sqs2pg migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"database at {migrate.head_revision(settings)}")
        return 0
    if args.command == "check":
        return _runner(_check(settings))
    try:
        return _runner(_run(settings))
    except (QueueError, ValueError) as exc:
        logs.event(logging.ERROR, "cannot start", "start", error=str(exc))
        return EXIT_CONFIG


def _runner(coro: Coroutine[Any, Any, int]) -> int:
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
