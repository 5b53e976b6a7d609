"""Schema migrations: Alembic, driven from code so `sqs2pg migrate` needs no alembic.ini."""

from __future__ import annotations

import asyncio
import importlib.resources
import os
from pathlib import Path

import asyncpg
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from ..config import Settings
from ..errors import StartupError
from . import retention
from .pool import describe_database_error

VERSION_TABLE = "sqs2pg_alembic_version"  # as in migrations/env.py: alembic_version is the application's


def migrations_dir() -> Path:
    """The migrations installed with the package (``sqs2pg.migrations``), or $MIGRATIONS_DIR when set."""
    override = os.environ.get("MIGRATIONS_DIR")
    path = Path(override) if override else Path(str(importlib.resources.files("sqs2pg.migrations")))
    if not (path / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic migrations at {path}" + (" (MIGRATIONS_DIR)" if override else ""))
    return path


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connect_kwargs"] = settings.connect_kwargs()
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; StartupError (one line) when they cannot be applied.
    Blocking: call it via asyncio.to_thread from a running loop."""
    try:
        migrations = alembic_config(settings)
    except FileNotFoundError as exc:
        raise StartupError(f"{exc}: reinstall sqs2pg, or point MIGRATIONS_DIR at a migrations folder") from exc
    try:
        command.upgrade(migrations, revision)
        if revision == "head":
            asyncio.run(_prepare(settings))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, sqlalchemy.exc.DBAPIError) as exc:
        cause = _driver_error(exc)
        raise StartupError(
            f"cannot migrate: {describe_database_error(cause, settings.redacted_database_url())}"
        ) from exc


async def _prepare(settings: Settings) -> None:
    """The idempotency records' partitions for today and the days just ahead (the service keeps creating them)."""
    conn = await connect(settings)
    try:
        await retention.prepare(conn, settings.begin())
    finally:
        await conn.close()


def _driver_error(exc: BaseException) -> BaseException:
    """asyncpg's own error (it carries the SQLSTATE) from inside SQLAlchemy's wrappers, else ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            break
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return seen or exc


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection with the service's settings (for `check`)."""
    return await asyncpg.connect(**settings.connect_kwargs())


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


async def current_revision(conn: asyncpg.Connection) -> str | None:
    """The revision recorded in the database, read over an asyncpg connection."""
    exists = await conn.fetchval(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL")
    if not exists:
        return None
    revision = await conn.fetchval(f"SELECT version_num FROM {VERSION_TABLE} LIMIT 1")
    return None if revision is None else str(revision)
