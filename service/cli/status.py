"""`sqs2pg status`: what happened to writes, by idempotency key (db/records.py gives the answers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import asyncpg

from ..config import Settings
from ..db import records
from ..errors import StartupError
from .common import EXIT_FAILED, RAW, Command, database


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "status",
        help="what happened to writes, by idempotency key: committed, duplicate, dead_lettered, unknown",
        formatter_class=RAW,
        description="Each key's status from sqs2pg's idempotency records (needs only DATABASE_URL):\n"
        "  committed      applied once\n"
        "  duplicate      its effect was already there when it arrived: not applied again\n"
        "  dead_lettered  failed permanently, in the dead-letter queue (the reason is shown)\n"
        "  unknown        not applied yet (still queued, or never sent), or its record was pruned",
        epilog="exit 0 when every key is committed or duplicate, 1 otherwise",
    )
    p.add_argument("keys", nargs="+", metavar="KEY", help="idempotency keys; - reads them from stdin, one per line")
    p.add_argument("--json", action="store_true", help="one JSON object per key")
    return p


async def run(settings: Settings, args: argparse.Namespace) -> int:
    keys = [k for arg in args.keys for k in ([line.strip() for line in sys.stdin] if arg == "-" else [arg]) if k]
    conn = await database(settings)
    try:
        answers: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), records.MAX_KEYS):
            answers.update(await records.lookup(conn, keys[i : i + records.MAX_KEYS]))
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
            # one line per key, always: the reason quoted as `dlq peek` quotes its error (a newline as \n)
            why = f"; {a['error_kind']}: {a['reason'][:300]!r}" if a["status"] == "dead_lettered" else ""
            print(f"{a['key']}: {a['status']} ({a['queue']}, message {a['message_id']}, at {a['at']}{why})")
    return 0 if all(a["status"] in ("committed", "duplicate") for a in answers.values()) else EXIT_FAILED


COMMAND = Command("status", add_parser, run, needs_queues=False)
