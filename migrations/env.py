"""Alembic environment: runs migrations over asyncpg, with the same connection settings as the service."""

from __future__ import annotations

import asyncio

import asyncpg
import sqlalchemy as sa
from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

config = context.config
# sqs2pg's own version table: Alembic's default, alembic_version, belongs to the application's own migrations.
VERSION_TABLE = "sqs2pg_alembic_version"


async def _run() -> None:
    connect_kwargs = config.attributes["connect_kwargs"]
    connect_kwargs = {k: v for k, v in connect_kwargs.items() if k != "command_timeout"}
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(**connect_kwargs), poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_sync)
            await conn.commit()
    finally:
        await engine.dispose()


def _run_sync(connection) -> None:  # type: ignore[no-untyped-def]
    with connection.begin():
        _adopt_legacy_version(connection)
    context.configure(connection=connection, transaction_per_migration=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def _adopt_legacy_version(connection) -> None:  # type: ignore[no-untyped-def]
    """sqs2pg 0.1 kept its revision in alembic_version: move it to VERSION_TABLE, leaving any other row there
    (an application's own revision) alone, and drop alembic_version only when nothing is left in it."""
    inspector = sa.inspect(connection)
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table("alembic_version"):
        return
    ours = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    found = [row[0] for row in connection.execute(sa.text("SELECT version_num FROM alembic_version"))]
    mine = [revision for revision in found if revision in ours]
    if not mine:
        return
    connection.execute(
        sa.text(
            f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL,"
            f" CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
        )
    )
    for revision in mine:
        connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:r)"), {"r": revision})
        connection.execute(sa.text("DELETE FROM alembic_version WHERE version_num = :r"), {"r": revision})
    if len(mine) == len(found):
        connection.execute(sa.text("DROP TABLE alembic_version"))


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `sqs2pg migrate`")
# Always a fresh event loop: callers inside a running loop use asyncio.to_thread (see service/migrate.py).
asyncio.run(_run())
