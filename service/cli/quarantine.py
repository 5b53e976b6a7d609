"""`sqs2pg quarantine list | release GROUP`: groups quarantined under SQS2PG_ON_PERMANENT_ERROR=quarantine_group."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from ..config import Settings
from ..db import quarantine
from ..errors import StartupError
from ..message import queue_name
from .common import EXIT_FAILED, Command, database, queue_urls, subcommand


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "quarantine",
        help="quarantined message groups: list, release",
        description="Groups quarantined under SQS2PG_ON_PERMANENT_ERROR=quarantine_group. Needs DATABASE_URL.",
    )
    q_sub = parser.add_subparsers(dest="quarantine_command", required=True, metavar="{list,release}")
    p = subcommand(q_sub, "list", "every quarantined group, why, and since when")
    p.add_argument("--queue", help="only this queue (name)")
    p = subcommand(
        q_sub,
        "release",
        "end a group's quarantine: its next messages are applied (what is in the DLQ stays there; "
        "`sqs2pg dlq redrive --group` moves it back first)",
    )
    p.add_argument("group", help="the message group id")
    p.add_argument("--queue", help="only in this queue (name); default: every queue it is quarantined in")
    return parser


async def _known(settings: Settings, conn: asyncpg.Connection, queue: str | None) -> str | None:
    """``--queue`` as a queue name, refused (exit 2) as `dlq` and `send` refuse it when it names no queue sqs2pg
    knows: one of SQS_QUEUE_URLS where that is set, else one sqs2pg applied messages from."""
    if queue is None:
        return None
    if settings.queue_urls:
        return queue_name(queue_urls(settings, queue)[0])
    name = queue_name(queue) if "://" in queue else queue
    if await conn.fetchval(quarantine.KNOWN_QUEUE, name):
        return name
    raise StartupError(
        f"--queue {queue!r}: sqs2pg has applied nothing from a queue of that name (SQS_QUEUE_URLS, when set, "
        "names the queues it may be)"
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    conn = await database(settings)
    try:
        queue = await _known(settings, conn, args.queue)
        if args.quarantine_command == "list":
            rows = await quarantine.groups(conn, queue)
            for r in rows:
                print(
                    f"{r['queue_name']}: group={r['message_group_id']} state={r['state']} since "
                    f"{r['quarantined_at']:%Y-%m-%d %H:%M:%S%z} by message {r['message_id']} "
                    f"({r['error_kind']}: {r['reason'][:200]})"
                )
            print(f"{len(rows)} group(s) quarantined")
            return 0
        released = await quarantine.release(conn, args.group, queue)
        if not released:
            print(f"group {args.group!r} is not quarantined" + (f" in {queue}" if queue else ""))
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


COMMAND = Command("quarantine", add_parser, run, needs_queues=False)
