"""Handlers used by the integration tests. Each fault is a real one, raised by the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from sqs2pg import Message, RetryableError
from sqs2pg.handler import insert_event


async def drop_connection_on_first_try(conn: asyncpg.Connection, message: Message) -> None:
    """A message whose body says {"fail_once": true} loses its database connection on its first try.

    The server terminates our own backend mid-transaction: the client sees exactly what it sees when
    Aurora fails over (57P01 / connection reset), and nothing of the transaction is committed.
    """
    body = message.json
    if isinstance(body, dict) and body.get("fail_once") and message.attempts == 0 and message.receive_count == 1:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    await insert_event(conn, message)


async def slow(conn: asyncpg.Connection, message: Message) -> None:
    """Holds the transaction open on the server for {"sleep_s": N} seconds before applying the message."""
    body = message.json
    if isinstance(body, dict) and body.get("sleep_s"):
        await conn.execute("SELECT pg_sleep($1)", float(body["sleep_s"]))
    await insert_event(conn, message)


async def accept_anything(conn: asyncpg.Connection, message: Message) -> None:
    """The 'fixed' consumer of the DLQ test: stores a body that is not a JSON object as {"raw": body}."""
    if not (message.is_json and isinstance(message.json, dict)):
        await conn.execute(
            "INSERT INTO events (idempotency_key, queue_name, message_group_id, message_id, body)"
            " VALUES ($1, $2, $3, $4, jsonb_build_object('raw', $5::text))",
            message.idempotency_key,
            message.queue_name,
            message.group_id,
            message.message_id,
            message.body,
        )
        return
    await insert_event(conn, message)


async def accept_anything_once_fixed(conn: asyncpg.Connection, message: Message) -> None:
    """A handler "fixed" while it runs: rejects a body that is not a JSON object (as the built-in one does) until
    a table named handler_fixed exists, then stores it as accept_anything does."""
    if await conn.fetchval("SELECT to_regclass('handler_fixed') IS NOT NULL"):
        await accept_anything(conn, message)
    else:
        await insert_event(conn, message)


async def swallow_database_error(conn: asyncpg.Connection, message: Message) -> None:
    """A buggy handler: catches a database error and carries on, leaving the transaction aborted (for every
    message, or only for those whose body has {"swallow": true} when any body says {"swallow": false})."""
    await insert_event(conn, message)
    if message.json.get("swallow", True) is False:
        return
    with contextlib.suppress(asyncpg.DataError):
        await conn.execute("SELECT 1/0")


APPLIED_TABLE = """
CREATE TABLE IF NOT EXISTS applied (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL,  -- deliberately not unique: a second apply must be visible, not refused
    message_group_id text NOT NULL,
    seq int NOT NULL,
    sent_at timestamptz,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


async def record_apply(conn: asyncpg.Connection, message: Message) -> None:
    """The fault suite's handler: one row per apply, with no unique key, so duplicates would show."""
    body = message.json
    if body.get("sleep_s"):
        await conn.execute("SELECT pg_sleep($1)", float(body["sleep_s"]))
    await conn.execute(
        "INSERT INTO applied (idempotency_key, message_group_id, seq, sent_at)"
        " VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000.0))",
        message.idempotency_key,
        message.group_id,
        int(body["seq"]),
        message.sent_timestamp_ms,
    )


async def gated(conn: asyncpg.Connection, message: Message) -> None:
    """record_apply, but a body with "gated": true fails (permanently: the handler's own exception) while table
    gate is empty. A failure that depends on state: applied later, it would succeed."""
    if message.json.get("gated") and not await conn.fetchval("SELECT EXISTS (SELECT FROM gate)"):
        raise RuntimeError("the gate is closed")
    await record_apply(conn, message)


async def hang_once(conn: asyncpg.Connection, message: Message) -> None:
    """A handler waiting on something that never answers (an HTTP call with no timeout, a lock in the
    application): a body with {"hang": true} hangs on its first try, then is applied."""
    if message.json.get("hang") and message.attempts == 0 and message.receive_count == 1:
        await asyncio.Event().wait()
    await insert_event(conn, message)


async def fail_then_apply(conn: asyncpg.Connection, message: Message) -> None:
    """A body with {"fail_times": N} fails transiently (RetryableError) on its first N tries, then is applied."""
    if message.attempts < int(message.json.get("fail_times", 0)):
        raise RetryableError(f"not yet: try {message.attempts + 1}")
    await insert_event(conn, message)


CHAOS_FLAKY_TABLE = "CREATE TABLE IF NOT EXISTS chaos_flaky (until timestamptz NOT NULL)"


async def chaos_apply(conn: asyncpg.Connection, message: Message) -> None:
    """The chaos soak's handler: record_apply, except that while table chaos_flaky says so (a fault), about one
    message in three fails transiently, as a handler calling a struggling dependency would."""
    flaky = await conn.fetchval("SELECT EXISTS (SELECT FROM chaos_flaky WHERE until > clock_timestamp())")
    if flaky and hash(message.message_id) % 3 == 0:
        raise RetryableError("chaos: a dependency is struggling")
    await record_apply(conn, message)


async def leaky(conn: asyncpg.Connection, message: Message) -> None:
    """A handler whose failures would quote the body: a CHECK violation on a row holding an e-mail address (its
    DETAIL lists the row), and a ValueError quoting a value it could not parse."""
    body = message.json
    if "amount" in body:
        int(body["amount"])
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS customers (id text, email text, age int CONSTRAINT customers_age_positive"
        " CHECK (age > 0))"
    )
    await conn.execute("INSERT INTO customers VALUES ($1, $2, $3)", body["id"], body["email"], body["age"])
