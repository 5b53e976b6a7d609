"""Schema migrations: Alembic, driven from code so `sqs2pg migrate` needs no alembic.ini."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from .config import Settings
from .store import connect_kwargs


def migrations_dir() -> Path:
    """migrations/ beside the package (a source checkout or the image's /app), or $MIGRATIONS_DIR."""
    override = os.environ.get("MIGRATIONS_DIR")
    path = Path(override) if override else Path(__file__).resolve().parent.parent / "migrations"
    if not (path / "env.py").is_file():
        raise FileNotFoundError(f"no Alembic migrations at {path} (set MIGRATIONS_DIR)")
    return path


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connect_kwargs"] = connect_kwargs(settings)
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Blocking: call it via asyncio.to_thread from a running loop."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


async def current_revision(conn) -> str | None:  # type: ignore[no-untyped-def]
    """The revision recorded in the database, read over an asyncpg connection."""
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    return await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
