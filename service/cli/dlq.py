"""`sqs2pg dlq stats | peek | redrive`: the dead-letter queue tools (sqs/dlq.py does the work; this prints)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from ..config import Settings
from ..db import migrate, quarantine, records
from ..errors import PermanentError, Sqs2pgError
from ..message import Message
from ..observe.metrics import Metrics
from ..sqs import deadletter, dlq
from ..sqs.client import Sqs
from ..sqs.deadletter import Attributes
from ..sqs.queues import QueueInfo
from .common import EXIT_FAILED, Command, positive, queue_urls, subcommand


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dlq",
        help="dead-letter queue tools: stats, peek, redrive",
        description="Dead-letter queue tools. Need SQS_QUEUE_URLS and the AWS settings, "
        "not DATABASE_URL; each queue's DLQ is found through its RedrivePolicy.",
    )
    dlq_sub = parser.add_subparsers(dest="dlq_command", required=True, metavar="{stats,peek,redrive}")
    for name, text in (
        ("stats", "message counts in each queue's dead-letter queue"),
        ("peek", "reasons, groups and counts of dead-lettered messages, without removing them"),
        ("redrive", "move dead-lettered messages back to their source queue, in order per group"),
    ):
        p = subcommand(dlq_sub, name, text)
        p.add_argument("--queue", help="only this source queue (name or URL); default: every configured queue")
        if name != "stats":
            limit = 10 if name == "peek" else 100
            p.add_argument(
                "--limit", type=positive, default=limit, help=f"at most this many messages (default {limit})"
            )
        if name == "redrive":
            p.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
            p.add_argument(
                "--group",
                help="only this message group; if it is quarantined (needs DATABASE_URL), its quarantine ends "
                "once all its messages are back",
            )
    return parser


async def run(settings: Settings, args: argparse.Namespace) -> int:
    urls = queue_urls(settings, args.queue)
    sqs = Sqs(settings, Metrics())
    await sqs.open()
    try:
        queues = [await sqs.describe(u) for u in urls]
        try:
            return await _command(sqs, queues, args, settings)
        except Sqs2pgError as exc:  # SQS failed part-way: what was held is visible again after HOLD_S at worst
            print(
                f"sqs2pg dlq {args.dlq_command}: an SQS call failed at {sqs.endpoint} ({exc}): nothing was lost; "
                "run the command again",
                file=sys.stderr,
            )
            return EXIT_FAILED
    finally:
        await sqs.close()


async def _command(sqs: Sqs, queues: list[QueueInfo], args: argparse.Namespace, settings: Settings) -> int:
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
                    f"  {dlq.named(m)} reason={deadletter.reason(m)} receives={deadletter.receives(m)}"
                    f" bytes={len(m.body.encode())}"
                    f" error={deadletter.error_text(m)[:200]!r}"
                )
        else:
            async with _records(settings) as kept:
                result = await dlq.redrive(
                    sqs, q, args.limit, args.dry_run, lambda line: print("  " + line), args.group, kept
                )
            verb = f"{result.would_move} would move" if args.dry_run else f"{result.moved} moved"
            print(f"{q.name}: {verb}, {len(result.failed)} failed")
            failures += len(result.failed)
    return EXIT_FAILED if failures else 0


@contextlib.asynccontextmanager
async def _records(settings: Settings) -> AsyncIterator[Callable[[Message], Awaitable[Attributes | None]] | None]:
    """With DATABASE_URL, what each dead-letter record kept of its message's attributes (a copy to the DLQ that had
    to leave some out gets them back); without it, nothing."""
    if not settings.database_url:
        yield None
        return
    try:
        conn = await migrate.connect(settings)
    except Exception as exc:  # noqa: BLE001 - a redrive does not need the database
        print(f"(attributes left out of DLQ copies not restored: the database did not answer: {type(exc).__name__})")
        yield None
        return
    try:
        yield _kept_by(conn)
    finally:
        await conn.close()


def _kept_by(conn: asyncpg.Connection | None) -> Callable[[Message], Awaitable[Attributes | None]] | None:
    if conn is None:
        return None

    async def kept(m: Message) -> Attributes | None:
        try:
            stored = await records.kept_attributes(conn, m.idempotency_key)
        except (PermanentError, asyncpg.PostgresError):
            return None  # no key, or not migrated to a version that keeps them
        return None if stored is None else deadletter.unstored(stored)

    return kept


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
        return await quarantine.counts(conn)
    except asyncpg.PostgresError:
        return None  # not migrated to a version with quarantines
    finally:
        await conn.close()


async def _redrive_group(sqs: Sqs, queues: list[QueueInfo], args: argparse.Namespace, settings: Settings) -> int:
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
                sqs, q, args.limit, False, lambda line: print("  " + line), args.group, _kept_by(conn)
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


COMMAND = Command("dlq", add_parser, run, needs_database=False)
