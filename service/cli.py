"""The command line: `sqs2pg run | migrate | check | send | status | drill | dlq | quarantine`.

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
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import uvloop

from . import __version__, config, dlq, logs, migrate, quarantine
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


def _subcommand(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose --help description is its one-line help, as a sentence."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    return parser


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="sqs2pg", description=DESCRIPTION, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"sqs2pg {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{run,migrate,check,send,status,drill,dlq,quarantine}"
    )
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
    p = sub.add_parser(
        "send",
        help="send writes (JSON lines) to a queue, with group and idempotency key",
        formatter_class=raw,
        description="Send writes through the Producer (MessageGroupId, idempotency_key attribute, deduplication "
        "id), one per line of JSON. Without --group each line is a write:\n"
        '  {"group": "order-42", "key": "order-42-paid", "body": {...}, "attributes": {"source": "web"}}\n'
        "(key and attributes optional; a missing key is generated). With --group each line is a body, sent to "
        "that group. Needs SQS_QUEUE_URLS and the AWS settings, not DATABASE_URL.",
        epilog="exit 0 when every line was sent, 1 when some failed (each named on stderr), 2 when it cannot start",
    )
    p.add_argument("file", nargs="?", default="-", help="a file of JSON lines (default: stdin)")
    p.add_argument(
        "--queue", help="a queue named in SQS_QUEUE_URLS, or any queue URL (default: the first of SQS_QUEUE_URLS)"
    )
    p.add_argument("--group", help="every line is a body for this message group")
    p.add_argument("--print-keys", action="store_true", help="print each sent write's key and group")
    p = sub.add_parser(
        "status",
        help="what happened to writes, by idempotency key: committed, duplicate, dead_lettered, unknown",
        formatter_class=raw,
        description="Each key's status from sqs2pg's idempotency records (needs only DATABASE_URL):\n"
        "  committed      applied once\n"
        "  duplicate      its effect was already there when it arrived: not applied again\n"
        "  dead_lettered  failed permanently, in the dead-letter queue (the reason is shown)\n"
        "  unknown        not applied yet (still queued, or never sent), or its record was pruned",
        epilog="exit 0 when every key is committed or duplicate, 1 otherwise",
    )
    p.add_argument("keys", nargs="+", metavar="KEY", help="idempotency keys; - reads them from stdin, one per line")
    p.add_argument("--json", action="store_true", help="one JSON object per key")
    p = sub.add_parser(
        "drill",
        help="send a numbered workload and report lost, duplicated and reordered (run it during a failover)",
        formatter_class=raw,
        description="A failover drill on a deployed stack: sends --messages numbered messages over --groups groups "
        "at --rate per second, marked with the attribute sqs2pg_drill (the service applies them to its table "
        "sqs2pg_drill, never to your handler, so it is safe on a live queue), waits for them, and reports lost, "
        "applied twice and out of order, with the longest pause in applying. Start the failover (the Terraform "
        "module's FIS experiment) while it sends. Needs DATABASE_URL and SQS_QUEUE_URLS.",
        epilog="exit 0 when nothing was lost, duplicated or reordered, 1 otherwise",
    )
    p.add_argument(
        "--queue", help="a queue named in SQS_QUEUE_URLS, or any queue URL (default: the first of SQS_QUEUE_URLS)"
    )
    p.add_argument("--messages", type=_positive, default=1200, help="messages to send (default 1200)")
    p.add_argument("--groups", type=_positive, default=20, help="message groups (default 20)")
    p.add_argument("--rate", type=_positive, default=20, help="messages per second (default 20: a minute of sends)")
    p.add_argument(
        "--wait-s", type=_positive, default=600, help="how long to wait for the last message after sending (600)"
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
        p = _subcommand(dlq_sub, name, text)
        p.add_argument("--queue", help="only this source queue (name or URL); default: every configured queue")
        if name != "stats":
            limit = 10 if name == "peek" else 100
            p.add_argument(
                "--limit", type=_positive, default=limit, help=f"at most this many messages (default {limit})"
            )
        if name == "redrive":
            p.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
            p.add_argument(
                "--group",
                help="only this message group; if it is quarantined (needs DATABASE_URL), its quarantine ends "
                "once all its messages are back",
            )
    q_parser = sub.add_parser(
        "quarantine",
        help="quarantined message groups: list, release",
        description="Groups quarantined under SQS2PG_ON_PERMANENT_ERROR=quarantine_group. Needs DATABASE_URL.",
    )
    q_sub = q_parser.add_subparsers(dest="quarantine_command", required=True, metavar="{list,release}")
    p = _subcommand(q_sub, "list", "every quarantined group, why, and since when")
    p.add_argument("--queue", help="only this queue (name)")
    p = _subcommand(
        q_sub,
        "release",
        "end a group's quarantine: its next messages are applied (what is in the DLQ stays there; "
        "`sqs2pg dlq redrive --group` moves it back first)",
    )
    p.add_argument("group", help="the message group id")
    p.add_argument("--queue", help="only in this queue (name); default: every queue it is quarantined in")
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
            return await _dlq_command(sqs, queues, args, settings)
        except Sqs2pgError as exc:  # SQS failed part-way: what was held is visible again after HOLD_S at worst
            print(
                f"sqs2pg dlq {args.dlq_command}: an SQS call failed at {sqs.endpoint} ({exc}): nothing was lost; "
                "run the command again",
                file=sys.stderr,
            )
            return EXIT_FAILED
    finally:
        await sqs.close()


async def _dlq_command(sqs: Sqs, queues: list[Any], args: argparse.Namespace, settings: Settings) -> int:
    if args.dlq_command == "stats":
        quarantined = await _quarantine_counts(settings)
        for row in await dlq.stats(sqs, queues):
            groups = "" if quarantined is None else f", {quarantined.get(row['queue'], 0)} group(s) quarantined"
            print(
                f"{row['queue']}: dead-letter queue {row['dlq']}: "
                f"{row['visible']} waiting, {row['in_flight']} in flight{groups}"
            )
        return 0
    if args.dlq_command == "redrive" and args.group and not args.dry_run:
        return await _redrive_group(sqs, queues, args, settings)
    failures = 0
    for q in queues:
        if args.dlq_command == "peek":
            seen = await dlq.peek(sqs, q, args.limit)
            print(f"{q.name}: {len(seen.messages)} message(s) looked at (limit {args.limit})")
            if seen.messages:
                print("  by reason: " + ", ".join(f"{k}={v}" for k, v in seen.by_reason().most_common()))
                print("  by group:  " + ", ".join(f"{k}={v}" for k, v in seen.by_group().most_common()))
            for m in seen.messages:
                print(
                    f"  group={m.group_id} id={dlq.original_id(m)} dlq_id={m.message_id} reason={dlq.reason(m)}"
                    f" receives={m.attribute('sqs2pg_receive_count') or '?'} bytes={len(m.body.encode())}"
                    f" error={(m.attribute('sqs2pg_error') or '')[:200]!r}"
                )
        else:
            result = await dlq.redrive(
                sqs, q, args.limit, args.dry_run, report=lambda line: print("  " + line), group=args.group
            )
            verb = f"{result.would_move} would move" if args.dry_run else f"{result.moved} moved"
            print(f"{q.name}: {verb}, {len(result.failed)} failed")
            failures += len(result.failed)
    return EXIT_FAILED if failures else 0


async def _quarantine_counts(settings: Settings) -> dict[str, int] | None:
    """Quarantined groups per queue, when DATABASE_URL is set and answers (else None: stats go on without)."""
    if not settings.database_url:
        return None
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:  # noqa: BLE001 - the DLQ counts do not need the database
        print(f"(quarantined groups not shown: the database did not answer: {type(exc).__name__})", file=sys.stderr)
        return None
    try:
        return {r["queue_name"]: int(r["n"]) for r in await conn.fetch(quarantine.COUNTS)}
    except asyncpg.PostgresError:
        return None  # not migrated to a version with quarantines
    finally:
        await conn.close()


async def _redrive_group(sqs: Sqs, queues: list[Any], args: argparse.Namespace, settings: Settings) -> int:
    """Move one group's messages back; if it is quarantined, its redriven copies are applied meanwhile and the
    quarantine ends once none of its messages is left in the DLQ."""
    conn = await migrate.connect(settings) if settings.database_url else None
    if conn is None:
        print(
            f"DATABASE_URL not set: a quarantine of group {args.group!r}, if any, cannot be released, and its "
            "redriven messages go straight back to the DLQ; set DATABASE_URL as the service has it",
            file=sys.stderr,
        )
    failures = 0
    try:
        for q in queues:
            releasing = conn is not None and await quarantine.start_releasing(conn, q.name, args.group)
            result = await dlq.redrive(
                sqs, q, args.limit, False, report=lambda line: print("  " + line), group=args.group
            )
            failures += len(result.failed)
            print(f"{q.name}: {result.moved} moved, {len(result.failed)} failed")
            if not releasing:
                continue
            if result.failed or result.moved >= args.limit:
                print(f"{q.name}: group {args.group!r} stays quarantined (releasing): run the redrive again")
                continue
            assert conn is not None
            again = await quarantine.finish_releasing(conn, q.name, args.group)
            if again is None:
                print(f"{q.name}: group {args.group!r} released")
            else:
                failures += 1
                print(
                    f"{q.name}: group {args.group!r} quarantined again by message {again['message_id']} "
                    f"({again['error_kind']}: {again['reason'][:200]})"
                )
    finally:
        if conn is not None:
            await conn.close()
    return EXIT_FAILED if failures else 0


async def _quarantine(settings: Settings, args: argparse.Namespace) -> int:
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:
        raise StartupError(describe_database_error(exc, settings.redacted_database_url())) from exc
    try:
        if args.quarantine_command == "list":
            rows = await quarantine.groups(conn, args.queue)
            for r in rows:
                print(
                    f"{r['queue_name']}: group={r['message_group_id']} state={r['state']} since "
                    f"{r['quarantined_at']:%Y-%m-%d %H:%M:%S%z} by message {r['message_id']} "
                    f"({r['error_kind']}: {r['reason'][:200]})"
                )
            print(f"{len(rows)} group(s) quarantined")
            return 0
        released = await quarantine.release(conn, args.group, args.queue)
        if not released:
            print(f"group {args.group!r} is not quarantined" + (f" in {args.queue}" if args.queue else ""))
            return EXIT_FAILED
        for q in released:
            print(f"{q}: group {args.group!r} released; its next messages are applied")
        return 0
    except asyncpg.UndefinedTableError as exc:
        raise StartupError(
            f"no table sqs2pg_quarantined_groups in {settings.redacted_database_url()}: run `sqs2pg migrate`"
        ) from exc
    finally:
        await conn.close()


def _queue_url(settings: Settings, queue: str | None) -> str:
    if queue is None:
        return settings.queue_urls[0]
    for url in settings.queue_urls:
        if queue in (url, queue_name(url)):
            return url
    if "://" in queue:  # any queue's URL: a producer may send where this service does not consume
        return queue
    raise StartupError(f"--queue {queue!r} is not one of SQS_QUEUE_URLS ({', '.join(settings.queue_urls)})")


async def _producer(settings: Settings, queue: str | None) -> Any:
    from .producer import Producer, ProducerError

    url = _queue_url(settings, queue)
    # The queue is checked as `run` checks it, so what is wrong (credentials, endpoint, a missing queue) is said
    # the same way, in one line.
    sqs = Sqs(settings, Metrics())
    try:
        await sqs.open()
        await sqs.describe(url)
    finally:
        await sqs.close()
    producer = Producer(url, region=settings.region)
    try:
        await producer.open()
    except ProducerError as exc:
        raise StartupError(str(exc)) from exc
    except Exception as exc:
        raise StartupError(f"cannot reach SQS for {url}: {type(exc).__name__}: {exc}") from exc
    return producer


def _write(line: str, group: str | None) -> Any:
    """One line of `sqs2pg send`'s input as a Write; ValueError says what is wrong with it."""
    import json

    from .producer import Write

    try:
        doc = json.loads(line)
    except ValueError:
        raise ValueError("not JSON") from None
    if group is not None:
        return Write(doc, group)
    if not isinstance(doc, dict) or "body" not in doc or "group" not in doc:
        raise ValueError('not a write: {"group": ..., "body": ...} (or pass --group to send plain bodies)')
    unknown = set(doc) - {"group", "key", "body", "attributes"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}: a write has group, key, body, attributes")
    return Write(doc["body"], doc["group"], doc.get("key"), doc.get("attributes") or {})


async def _send(settings: Settings, args: argparse.Namespace) -> int:
    from .producer import ProducerError, Sent

    source = sys.stdin if args.file == "-" else None
    try:
        stream = source or open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StartupError(f"cannot read {args.file}: {exc.strerror}") from exc
    producer = await _producer(settings, args.queue)
    sent = failed = 0
    started = last_progress = time.monotonic()

    def fail(line_no: int, reason: str) -> None:
        nonlocal failed
        failed += 1
        print(f"line {line_no}: not sent: {reason}", file=sys.stderr)

    async def flush(chunk: list[tuple[int, Any]]) -> None:
        nonlocal sent
        results = await producer.send_many([w for _, w in chunk])
        for (line_no, _), result in zip(chunk, results, strict=True):
            if isinstance(result, Sent):
                sent += 1
                if args.print_keys:
                    print(f"{result.key}\t{result.group}\t{result.message_id}")
            else:
                fail(line_no, f"{result.code}: {result.reason}")

    try:
        chunk: list[tuple[int, Any]] = []
        for line_no, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                write = _write(line, args.group)
                producer.validate(write)
            except (ValueError, ProducerError) as exc:
                fail(line_no, str(exc))
                continue
            chunk.append((line_no, write))
            if len(chunk) == 100:
                await flush(chunk)
                chunk = []
                if time.monotonic() - last_progress >= 2:
                    last_progress = time.monotonic()
                    print(f"... {sent} sent, {failed} failed", file=sys.stderr, flush=True)
        if chunk:
            await flush(chunk)
    finally:
        if source is None:
            stream.close()
        await producer.close()
    print(f"{sent} sent to {producer.queue_name}, {failed} failed ({time.monotonic() - started:.1f} s)")
    return EXIT_FAILED if failed else 0


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from . import writes

    keys = [k for arg in args.keys for k in ([line.strip() for line in sys.stdin] if arg == "-" else [arg]) if k]
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:
        raise StartupError(describe_database_error(exc, settings.redacted_database_url())) from exc
    try:
        answers: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), writes.MAX_KEYS):
            answers.update(await writes.lookup(conn, keys[i : i + writes.MAX_KEYS]))
    except asyncpg.UndefinedTableError as exc:
        raise StartupError(f"no sqs2pg tables in {settings.redacted_database_url()}: run `sqs2pg migrate`") from exc
    finally:
        await conn.close()
    for a in answers.values():
        if args.json:
            print(json.dumps(a))
        elif a["status"] == "unknown":
            print(f"{a['key']}: unknown (not applied yet, never sent, or its record was pruned)")
        else:
            why = f"; {a['error_kind']}: {a['reason'][:300]}" if a["status"] == "dead_lettered" else ""
            print(f"{a['key']}: {a['status']} ({a['queue']}, message {a['message_id']}, at {a['at']}{why})")
    return 0 if all(a["status"] in ("committed", "duplicate") for a in answers.values()) else EXIT_FAILED


async def _drill(settings: Settings, args: argparse.Namespace) -> int:
    from . import drill

    plan = drill.Plan(args.messages, args.groups, float(args.rate), float(args.wait_s))
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:
        raise StartupError(describe_database_error(exc, settings.redacted_database_url())) from exc
    await conn.close()
    producer = await _producer(settings, args.queue)
    run_id = drill.new_run_id()
    print(
        f"drill {run_id}: sending {plan.messages} messages over {plan.groups} groups at {plan.rate:g}/s to "
        f"{producer.queue_name}; fail the database over now",
        flush=True,
    )
    last = time.monotonic()

    def progress(sent: int, failed: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(f"... {sent} sent, {failed} failed to send", file=sys.stderr, flush=True)

    try:
        sent, failed = await drill.send(producer, run_id, plan, progress)
    finally:
        await producer.close()
    deadline = time.monotonic() + plan.wait_s
    applied = -1
    while True:  # the database may be failing over right now: reconnect each round
        try:
            conn = await migrate.connect(settings)
            try:
                applied = await drill.applied(conn, run_id)
                if applied >= sent or time.monotonic() > deadline:
                    result = await drill.report(conn, run_id, sent, failed)
                    break
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"the database did not answer to read the drill's results: {exc}") from exc
        print(f"... {max(applied, 0)} of {sent} applied", file=sys.stderr, flush=True)
        await asyncio.sleep(2)
    return 0 if drill.print_report(result, plan.wait_s) else EXIT_FAILED


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
    command = {"dlq": f"dlq {getattr(args, 'dlq_command', '')}", "quarantine": "quarantine"}.get(
        args.command, args.command
    )
    debug = os.environ.get(PREFIX + "LOG_LEVEL", "").strip().upper() == "DEBUG"
    try:
        settings = config.load(
            require_database=args.command not in ("dlq", "send"),
            require_queues=args.command not in ("migrate", "quarantine", "status"),
        )
        logs.setup(settings.log_level)
        work: Callable[[], int] = {
            "run": lambda: _in_loop(_run(settings)),
            "check": lambda: _in_loop(_check(settings)),
            "dlq": lambda: _in_loop(_dlq(settings, args)),
            "migrate": lambda: _migrate(settings),
            "quarantine": lambda: _in_loop(_quarantine(settings, args)),
            "send": lambda: _in_loop(_send(settings, args)),
            "status": lambda: _in_loop(_status(settings, args)),
            "drill": lambda: _in_loop(_drill(settings, args)),
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
