"""`sqs2pg migrate`: apply the database migrations up to head."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from ..db import migrate
from .common import RAW, Command, in_loop


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "migrate",
        help="apply the database migrations up to head",
        formatter_class=RAW,
        description="Apply sqs2pg's database migrations up to head (needs only DATABASE_URL).",
        epilog="MIGRATIONS_DIR overrides the migrations installed with the package.",
    )
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    before = in_loop(_revision(settings))
    migrate.upgrade(settings)
    head = migrate.head_revision(settings)
    if before == head:
        print(f"database already at {head}: nothing to do")
    else:
        print(f"database migrated from {before or 'nothing'} to {head}")
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


COMMAND = Command("migrate", add_parser, run, needs_queues=False)
