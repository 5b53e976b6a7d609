"""The command line: `sqs2pg run | migrate | check`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Coroutine

import asyncpg
import uvloop

from . import config, dlq, logs, migrate
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


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        urls = [u for u in settings.queue_urls if getattr(args, "queue", None) in (None, u, u.rsplit("/", 1)[-1])]
        if not urls:
            print(f"sqs2pg dlq: {args.queue!r} is not one of SQS_QUEUE_URLS", file=sys.stderr)
            return EXIT_CONFIG
        queues = [await sqs.describe(u) for u in urls]
        if args.dlq_command == "stats":
            for row in await dlq.stats(sqs, queues):
                print(f"{row['queue']}: dead-letter queue {row['dlq']}: {row['visible']} waiting, {row['in_flight']} in flight")
            return 0
        if args.limit < 1:
            print("sqs2pg dlq: --limit must be at least 1", file=sys.stderr)
            return EXIT_CONFIG
        failures = 0
        for q in queues:
            if args.dlq_command == "peek":
                seen = await dlq.peek(sqs, q, args.limit)
                print(f"{q.name}: {len(seen.messages)} message(s) looked at (limit {args.limit})")
                print("  by reason: " + ", ".join(f"{k}={v}" for k, v in seen.by_reason().most_common()))
                print("  by group:  " + ", ".join(f"{k}={v}" for k, v in seen.by_group().most_common()))
                for m in seen.messages:
                    print(
                        f"  group={m.group_id} id={m.message_id} reason={dlq.reason(m)}"
                        f" receives={m.attribute('sqs2pg_receive_count') or '?'} bytes={len(m.body.encode())}"
                        f" error={(m.attribute('sqs2pg_error') or '')[:200]!r}"
                    )
            else:
                result = await dlq.redrive(sqs, q, args.limit, args.dry_run, report=lambda line: print("  " + line))
                verb = f"{result.would_move} would move" if args.dry_run else f"{result.moved} moved"
                print(f"{q.name}: {verb}, {len(result.failed)} failed")
                failures += len(result.failed)
        return 1 if failures else 0
    finally:
        await sqs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqs2pg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consume the queues until SIGTERM/SIGINT")
    sub.add_parser("migrate", help="apply the database migrations up to head")
    sub.add_parser("check", help="check configuration, database, migrations and queues")
    dlq_parser = sub.add_parser("dlq", help="dead-letter queue tooling (needs only SQS_QUEUE_URLS and AWS settings)")
    dlq_sub = dlq_parser.add_subparsers(dest="dlq_command", required=True)
    dlq_sub.add_parser("stats", help="message counts in each queue's dead-letter queue")
    for name, text in (("peek", "show reasons, groups and counts of dead-lettered messages, without removing them"),
                       ("redrive", "move dead-lettered messages back to their source queue, in order per group")):
        p = dlq_sub.add_parser(name, help=text)
        p.add_argument("--queue", help="only this source queue (name or URL); default: every configured queue")
        p.add_argument("--limit", type=int, default=10 if name == "peek" else 100, help="at most this many messages")
        if name == "redrive":
            p.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    args = parser.parse_args(argv)

    try:
        settings = config.load(require_database=args.command != "dlq", require_queues=args.command != "migrate")
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
    if args.command == "dlq":
        return _runner(_dlq(settings, args))
    try:
        return _runner(_run(settings))
    except (QueueError, ValueError) as exc:
        logs.event(logging.ERROR, "cannot start", "start", error=str(exc))
        return EXIT_CONFIG


def _runner(coro: Coroutine[Any, Any, int]) -> int:
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
