"""`sqs2pg quarantine list | release GROUP`: groups quarantined under SQS2PG_ON_PERMANENT_ERROR=quarantine_group."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from ..config import Settings
from ..db import quarantine
from ..errors import StartupError
from .common import EXIT_FAILED, Command, database, subcommand


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


async def run(settings: Settings, args: argparse.Namespace) -> int:
    conn = await database(settings)
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


COMMAND = Command("quarantine", add_parser, run, needs_queues=False)
