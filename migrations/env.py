"""Alembic environment: runs migrations over asyncpg, with the same connection settings as the service."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

config = context.config


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
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `sqs2pg migrate`")
# Always a fresh event loop: callers inside a running loop use asyncio.to_thread (see service/migrate.py).
asyncio.run(_run())
