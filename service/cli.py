"""The command line: `sqs2pg run | migrate | check | dlq`.

Every command reads its configuration from the environment (config.py). A command that cannot start says why
in one line on stderr and exits 2 (EXIT_CANNOT_START); the traceback is shown only with
SQS2PG_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from . import __version__, config, dlq, logs, migrate
from .config import PREFIX, Settings, knob_fields
from .errors import Sqs2pgError, StartupError, describe_database_error
from .message import queue_name
from .metrics import Metrics
from .sqs import Sqs

T = TypeVar("T")
EXIT_FAILED = 1  # `check` found a problem, `dlq redrive` failed to move a message, or `run` crashed after starting
EXIT_CANNOT_START = 2  # configuration or environment unusable: restarting will not help

DESCRIPTION = """\
Apply SQS FIFO messages to PostgreSQL exactly once, in order per message group.
Configuration comes from the environment: `sqs2pg run --help` lists every variable."""

REQUIRED = """\
required environment:
  DATABASE_URL      postgresql://user:password@host:5432/dbname (several hosts: host1:5432,host2:5432)
  SQS_QUEUE_URLS    comma-separated FIFO queue URLs, each with a FIFO dead-letter queue (RedrivePolicy)
  AWS_REGION        unless it can be read from the queue URLs; credentials and AWS_ENDPOINT_URL_SQS (an
                    emulator) come from the AWS SDK's usual variables, profiles or the task role"""


def _settings_help() -> str:
    lines = [
        REQUIRED,
        "",
        "optional environment:",
        "  HTTP_PORT (8080)  /metrics, /healthz, /readyz",
        f"  HANDLER ({config.DEFAULT_HANDLER})  import path of the handler: package.module:function",
    ]
    for f in knob_fields():
        lines.append(f"  {PREFIX}{f.name.upper()} ({f.default})  {f.metadata['doc']}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="sqs2pg", description=DESCRIPTION, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"sqs2pg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,migrate,check,dlq}")
    sub.add_parser(
        "run",
        help="consume the queues until SIGTERM/SIGINT",
        formatter_class=raw,
        description="Consume the queues until SIGTERM/SIGINT (exit 0 after a clean stop).",
        epilog=_settings_help(),
    )
    sub.add_parser(
        "migrate",
        help="apply the database migrations up to head",
        formatter_class=raw,
        description="Apply sqs2pg's database migrations up to head (needs only DATABASE_URL).",
        epilog="MIGRATIONS_DIR overrides the migrations installed with the package.",
    )
    sub.add_parser(
        "check",
        help="check configuration, handler, database, migrations and queues",
        formatter_class=raw,
        description="Check configuration, handler, database (writer), migrations and each queue; "
        "one line per check, exit 1 if any failed.",
        epilog=REQUIRED,
    )
    dlq_parser = sub.add_parser(
        "dlq",
        help="dead-letter queue tools: stats, peek, redrive",
        description="Dead-letter queue tools. Need SQS_QUEUE_URLS and the AWS settings, "
        "not DATABASE_URL; each queue's DLQ is found through its RedrivePolicy.",
    )
    dlq_sub = dlq_parser.add_subparsers(dest="dlq_command", required=True, metavar="{stats,peek,redrive}")
    for name, text in (
        ("stats", "message counts in each queue's dead-letter queue"),
        ("peek", "reasons, groups and counts of dead-lettered messages, without removing them"),
        ("redrive", "move dead-lettered messages back to their source queue, in order per group"),
    ):
        p = dlq_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--queue", help="only this source queue (name or URL); default: every configured queue")
        if name != "stats":
            limit = 10 if name == "peek" else 100
            p.add_argument(
                "--limit", type=_positive, default=limit, help=f"at most this many messages (default {limit})"
            )
        if name == "redrive":
            p.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _run(settings: Settings) -> int:
    from .app import App, stop_on_signals

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


async def _check(settings: Settings) -> int:
    """Print one line per check; exit 1 if any failed."""
    from .handler import load_handler

    failures = 0

    def report(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  {what}", flush=True)

    report(True, f"configuration ({len(settings.queue_urls)} queue(s), database {settings.redacted_database_url()})")
    try:
        load_handler(settings.handler)
        report(True, f"handler {settings.handler}")
    except StartupError as exc:
        report(False, str(exc))
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


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    urls = [u for u in settings.queue_urls if args.queue in (None, u, queue_name(u))]
    if not urls:
        raise StartupError(f"--queue {args.queue!r} is not one of SQS_QUEUE_URLS ({', '.join(settings.queue_urls)})")
    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        queues = [await sqs.describe(u) for u in urls]
        try:
            return await _dlq_command(sqs, queues, args)
        except Sqs2pgError as exc:  # SQS failed part-way: what was held is visible again after HOLD_S at worst
            print(
                f"sqs2pg dlq {args.dlq_command}: an SQS call failed at {sqs.endpoint} ({exc}): nothing was lost; "
                "run the command again",
                file=sys.stderr,
            )
            return EXIT_FAILED
    finally:
        await sqs.close()


async def _dlq_command(sqs: Sqs, queues: list[Any], args: argparse.Namespace) -> int:
    if args.dlq_command == "stats":
        for row in await dlq.stats(sqs, queues):
            print(
                f"{row['queue']}: dead-letter queue {row['dlq']}: "
                f"{row['visible']} waiting, {row['in_flight']} in flight"
            )
        return 0
    failures = 0
    for q in queues:
        if args.dlq_command == "peek":
            seen = await dlq.peek(sqs, q, args.limit)
            print(f"{q.name}: {len(seen.messages)} message(s) looked at (limit {args.limit})")
            print("  by reason: " + ", ".join(f"{k}={v}" for k, v in seen.by_reason().most_common()))
            print("  by group:  " + ", ".join(f"{k}={v}" for k, v in seen.by_group().most_common()))
            for m in seen.messages:
                print(
                    f"  group={m.group_id} id={dlq.original_id(m)} dlq_id={m.message_id} reason={dlq.reason(m)}"
                    f" receives={m.attribute('sqs2pg_receive_count') or '?'} bytes={len(m.body.encode())}"
                    f" error={(m.attribute('sqs2pg_error') or '')[:200]!r}"
                )
        else:
            result = await dlq.redrive(sqs, q, args.limit, args.dry_run, report=lambda line: print("  " + line))
            verb = f"{result.would_move} would move" if args.dry_run else f"{result.moved} moved"
            print(f"{q.name}: {verb}, {len(result.failed)} failed")
            failures += len(result.failed)
    return EXIT_FAILED if failures else 0


def _migrate(settings: Settings) -> int:
    before = _in_loop(_revision(settings))
    migrate.upgrade(settings)
    head = migrate.head_revision(settings)
    print(
        f"database at {head}"
        + (" (it was already)" if before == head else f" (it was {'at ' + before if before else 'not migrated'})")
    )
    return 0


async def _revision(settings: Settings) -> str | None:
    """The database's revision before migrating, or None (not migrated, or unreachable: upgrade says why)."""
    try:
        conn = await migrate.connect(settings)
    except Exception:  # noqa: BLE001 - migrate.upgrade reports the same failure in one line
        return None
    try:
        return await migrate.current_revision(conn)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command if args.command != "dlq" else f"dlq {args.dlq_command}"
    debug = os.environ.get(PREFIX + "LOG_LEVEL", "").strip().upper() == "DEBUG"
    try:
        settings = config.load(require_database=args.command != "dlq", require_queues=args.command != "migrate")
        logs.setup(settings.log_level)
        work: Callable[[], int] = {
            "run": lambda: _in_loop(_run(settings)),
            "check": lambda: _in_loop(_check(settings)),
            "dlq": lambda: _in_loop(_dlq(settings, args)),
            "migrate": lambda: _migrate(settings),
        }[args.command]
        return work()
    except StartupError as exc:
        return _cannot_start(command, str(exc), exc, debug)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"sqs2pg {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback (unless DEBUG)
        return _cannot_start(command, f"unexpected error: {type(exc).__name__}: {exc}", exc, debug)


def _cannot_start(command: str, message: str, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else " (SQS2PG_LOG_LEVEL=DEBUG shows the traceback)" if "unexpected error" in message else ""
    print(f"sqs2pg {command}: {message}{hint}", file=sys.stderr, flush=True)
    return EXIT_CANNOT_START


def _in_loop(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
