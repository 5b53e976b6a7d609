"""A transaction's ends, one copy: opened with Settings.begin() (BEGIN, and behind a transaction pooler the
server's timeouts with it), committed, or rolled back keeping the error that failed it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg


async def rollback(conn: asyncpg.Connection) -> None:
    """Roll back after a failure, keeping the original error; a connection that cannot is thrown away."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    try:
        await conn.execute("ROLLBACK")
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:  # noqa: BLE001 - the server rolls back a dropped connection by itself
        conn.terminate()


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection, begin: str) -> AsyncIterator[None]:
    """A transaction opened with ``begin`` (Settings.begin(): BEGIN, and behind a transaction pooler the timeouts
    with it), committed at the end, rolled back on any failure."""
    await conn.execute(begin)
    try:
        yield
    except BaseException:
        await rollback(conn)
        raise
    await conn.execute("COMMIT")
