"""PostgreSQL: the one transaction that applies a message together with its idempotency record.

What happens when a commit fails (connection reset, failover, timeout): the exception leaves ``apply``
unchanged, ``errors.classify`` calls it retryable, and the message is not deleted from SQS. When it comes
back there are two cases. The commit did not happen: it is applied now. The commit happened but we never
heard: the idempotency record is there with the same body hash, ``apply`` returns DUPLICATE and the message
is deleted without applying it twice. That is the whole exactly-once argument; it needs nothing else.

Several messages (each the head of a different group) may share one transaction: BEGIN, their idempotency
records in one statement, the handler's batch form in one call when it offers one (handler.handles_many; else
each one's handler), one COMMIT: four round trips for ten messages instead of forty. If anything
fails in it (a bad body, a constraint, a duplicate, a lost connection, a COMMIT never answered), it is
rolled back or its outcome is unknown, and each message is then applied at once in a transaction of its
own, so every message gets its own outcome exactly as if it had been alone, and the argument above holds
for each of them (a shared COMMIT that did happen shows up as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from ..config import Settings
from ..errors import (
    AVAILABILITY_KINDS,
    AlreadyApplied,
    DatabaseUnavailable,
    GroupQuarantined,
    IdempotencyKeyReused,
    NotAttempted,
    Outcome,
    PermanentError,
    SchemaMissing,
    Sqs2pgError,
    TransactionTimeout,
    classify,
    describe_database_error,
)
from ..handler import Handler, batch_form
from ..message import Message
from ..observe import logs
from . import drill, quarantine, records, retention
from .records import seen_before

# A connection that reports these is pointed at the wrong server (old writer, read-only) or is being shut
# down: throw it away instead of handing it to the next message.
_DISCARD_SQLSTATES = {"25006", "57P01", "57P02", "57P03"}


class _Separately(Exception):
    """The messages cannot be settled together; apply each in its own transaction."""


# In the one-by-one pass after a shared transaction failed: this many "database unavailable" failures and
# the rest are failed alike without trying (a failover would otherwise cost a connect timeout per message).
_UNAVAILABLE_GIVE_UP = 2


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes through on its way back to the pool: nothing beyond asyncpg's own clean-up (which
    rolls back a transaction left open). asyncpg's default also runs RESET ALL, UNLISTEN and unlocks advisory
    locks: a round trip per message, about 5% of the service's CPU in the benchmark. sqs2pg ends every
    transaction itself, so only session-level changes a handler makes would outlive a message; the handler
    contract says to make them transaction-local (SET LOCAL, pg_advisory_xact_lock)."""


async def _rollback(conn: asyncpg.Connection) -> None:
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


class Store:
    def __init__(self, settings: Settings, handler: Handler) -> None:
        self._settings = settings
        # drill messages (`sqs2pg drill`) go to sqs2pg's drill table, never to the user's handler
        self._handler = drill.routed(handler)
        self._many = drill.routed_many(handler, batch_form(handler))
        self._pool: asyncpg.Pool | None = None
        self.last_success = 0.0  # monotonic time of the last successful transaction

    async def open(self) -> None:
        # min_size=0: the service starts (and reports not ready) while the database is still down.
        self._pool = await asyncpg.create_pool(
            min_size=0,
            max_size=self._settings.pool_size,
            max_inactive_connection_lifetime=120,
            reset=_keep_session,
            **self._settings.connect_kwargs(),
        )

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout_s)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                self._pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Store.open() was not called"
        return self._pool

    async def apply(self, message: Message) -> Outcome:
        """Apply one message in one transaction with its idempotency record: COMMITTED or DUPLICATE."""
        key = message.idempotency_key  # InvalidMessage when the key is missing or malformed
        async with self._connection() as conn:
            outcome = await self._apply_in(conn, message, key)
        self.last_success = time.monotonic()
        return outcome

    async def apply_many(self, messages: list[Message]) -> list[Outcome | Exception]:
        """Apply messages of different groups: together in one transaction when they all go through, else
        each in its own. Returns each message's outcome, or the exception that failed it. With
        SQS2PG_ON_PERMANENT_ERROR=quarantine_group, a message of a quarantined group is not applied: its result
        is GroupQuarantined (a redriven copy is applied while `dlq redrive --group` releases the group)."""
        if self._settings.on_permanent_error != "quarantine_group":
            return await self._apply_many(messages)
        try:
            blocked = await self._quarantined(messages)
        except Exception as exc:  # noqa: BLE001 - classified by the consumer; the rest are held, not failed
            return [exc, *[NotAttempted()] * (len(messages) - 1)]
        if not blocked:
            return await self._apply_many(messages)
        rest = iter(await self._apply_many([m for m in messages if m not in blocked]))
        return [blocked[m] if m in blocked else next(rest) for m in messages]

    async def _quarantined(self, messages: list[Message]) -> dict[Message, Exception]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                quarantine.QUARANTINED, [m.queue_name for m in messages], [m.group_id for m in messages]
            )
        by_group = {(r["queue_name"], r["message_group_id"]): r for r in rows}
        blocked: dict[Message, Exception] = {}
        for m in messages:
            row = by_group.get((m.queue_name, m.group_id))
            if row is not None and not (row["state"] == "releasing" and m.redriven):
                blocked[m] = GroupQuarantined(
                    f"group {m.group_id!r} is quarantined since message {row['message_id']} was dead-lettered"
                )
        return blocked

    async def _apply_many(self, messages: list[Message]) -> list[Outcome | Exception]:
        if not messages:
            return []
        if len(messages) > 1:
            try:
                return await self._apply_together(messages)
            except Exception as exc:  # noqa: BLE001 - nothing was committed (or, at COMMIT, idempotency decides)
                # Whatever failed the shared transaction, each message is tried once alone, at once: a lost
                # connection then costs only the message that lost it a retry, not every one beside it.
                logs.event(
                    logging.DEBUG,
                    "shared transaction failed: one by one",
                    "apply",
                    messages=len(messages),
                    error_kind=classify(exc).kind,
                )
        results: list[Outcome | Exception] = []
        unavailable = 0
        for i, message in enumerate(messages):
            try:
                results.append(await self.apply(message))
            except Exception as exc:  # noqa: BLE001 - this message's failure, classified by the consumer
                results.append(exc)
                if classify(exc).kind in AVAILABILITY_KINDS:
                    unavailable += 1
                    if unavailable == _UNAVAILABLE_GIVE_UP:  # the database is gone: do not try the rest now
                        return results + [NotAttempted()] * (len(messages) - i - 1)
        return results

    async def _apply_together(self, messages: list[Message]) -> list[Outcome | Exception]:
        """One transaction for all of them, or an exception (then apply_many tries them one by one)."""
        keys = [m.idempotency_key for m in messages]
        async with self._connection() as conn:
            await conn.execute("BEGIN")
            try:
                claimed = await conn.fetch(
                    records.CLAIM_KEYS,
                    keys,
                    [m.body_sha256 for m in messages],
                    [m.queue_name for m in messages],
                    [m.message_id for m in messages],
                )
                if len(claimed) != len(messages):
                    raise _Separately()  # a duplicate, or a key twice: settled each in its own transaction
                if self._many is not None:
                    await self._many(conn, messages)
                else:
                    for message in messages:
                        await self._handler(conn, message)
            except BaseException:
                await _rollback(conn)
                raise
            status = await conn.execute("COMMIT")
        if status != "COMMIT":
            raise _Separately()  # a handler swallowed a database error: find out whose, one at a time
        self.last_success = time.monotonic()
        return [Outcome.COMMITTED] * len(messages)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one transaction, which may last SQS2PG_TRANSACTION_TIMEOUT_S. One that reports
        it points at the wrong server (old writer, read-only) or is being shut down, or whose transaction ran out
        of time, is thrown away instead of going back to the pool."""
        conn = await self._acquire()
        limit = self._settings.transaction_timeout_s
        try:
            async with asyncio.timeout(limit) as bound:
                yield conn
        except TimeoutError as exc:
            if not bound.expired():
                raise  # some other timeout (a statement's own, the client side of statement_timeout)
            conn.terminate()  # it may be mid-statement: the server rolls back a dropped connection
            raise TransactionTimeout(f"the transaction ran longer than {limit:g} s and was rolled back") from exc
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) in _DISCARD_SQLSTATES:
                conn.terminate()
            raise
        finally:
            await self.pool.release(conn)

    async def _acquire(self) -> asyncpg.Connection:
        """A pooled connection. Failing to get one is never the message's fault: whatever the server said
        (even "database is not accepting connections", 55000, during a failover), it is DatabaseUnavailable."""
        try:
            return await self.pool.acquire(timeout=self._settings.db_connect_timeout_s)
        except Exception as exc:
            error = classify(exc)
            raise DatabaseUnavailable(f"cannot connect: {error}", kind="connection") from exc

    async def _apply_in(self, conn: asyncpg.Connection, message: Message, key: str) -> Outcome:
        # BEGIN and COMMIT by hand, because the COMMIT's status must be read: a handler that catches a
        # database error leaves the transaction aborted, and PostgreSQL answers that COMMIT with ROLLBACK.
        await conn.execute("BEGIN")
        try:
            # Claiming the key first also serialises two replicas that got the same key: the second waits on
            # the unique index until the first commits, then sees the conflict.
            claimed = await conn.fetchval(
                records.CLAIM_KEY, key, message.body_sha256, message.queue_name, message.message_id
            )
            if not claimed:
                record = await conn.fetchrow(records.KEY_RECORD, key)
                same_body = record is not None and bytes(record["body_sha256"]) == message.body_sha256
                if record is not None and record["status"] == "dead_lettered" and (message.redriven or not same_body):
                    # A redriven copy of the dead-lettered message, or a new body under its key (the producer's
                    # corrected resend): applied now, and the record becomes the commit's.
                    await conn.execute(records.CLEAR_DEAD_LETTER, key, message.message_id, message.body_sha256)
                else:
                    if record is not None and not same_body:
                        raise IdempotencyKeyReused(
                            f"idempotency key {key!r} was committed before with a different body"
                        )
                    await conn.execute("ROLLBACK")
                    return seen_before(record)
            try:
                await self._handler(conn, message)
            except AlreadyApplied:
                await conn.execute("ROLLBACK")
                await conn.execute(
                    records.RECORD_DUPLICATE, key, message.body_sha256, message.queue_name, message.message_id
                )
                return Outcome.DUPLICATE
        except BaseException:
            await _rollback(conn)
            raise
        status = await conn.execute("COMMIT")
        if status != "COMMIT":
            raise PermanentError(
                f"the transaction was rolled back ({status}): the handler caught a database error and went on",
                kind="handler",
            )
        return Outcome.COMMITTED

    async def record_dead_letter(self, message: Message, error: Sqs2pgError) -> bool:
        """Record, durably and before the copy to the DLQ, that this message is dead-lettered and why; with
        SQS2PG_ON_PERMANENT_ERROR=quarantine_group, quarantine its group in the same transaction. Returns
        whether a record was written (not when there is no valid key, or the key belongs to a commit). Raises
        DatabaseUnavailable (retryable) when the database cannot take it: the message then waits."""
        key = message.recorded_key
        quarantining = self._settings.on_permanent_error == "quarantine_group" and not isinstance(
            error, GroupQuarantined
        )
        if key is None and not quarantining:
            return False
        status = ""
        try:
            async with self._connection() as conn, conn.transaction():
                if key is not None:
                    status = await conn.execute(
                        records.RECORD_DEAD_LETTER,
                        key,
                        message.body_sha256,
                        message.queue_name,
                        message.message_id,
                        error.kind,
                        str(error)[:1000],
                    )
                if quarantining:
                    await conn.execute(
                        quarantine.QUARANTINE,
                        message.queue_name,
                        message.group_id,
                        message.message_id,
                        key,
                        error.kind,
                        str(error)[:1000],
                    )
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            raise DatabaseUnavailable(f"cannot record the dead-lettering: {classify(exc)}", kind="connection") from exc
        return str(status).endswith(" 1")

    async def write_status(self, key: str) -> dict[str, Any]:
        """A write's status by its key (records.py): GET /writes/{key}."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            return (await records.lookup(conn, [key]))[key]

    async def quarantined_counts(self) -> dict[str, int]:
        """Quarantined groups per queue name."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            return await quarantine.counts(conn)

    async def dead_letter_copied(self, message: Message) -> None:
        """The copy to the DLQ was sent: a redelivery only needs deleting. Best effort (a redelivery otherwise
        sends the copy again, which the DLQ drops as a duplicate within 5 minutes)."""
        try:
            async with self._connection() as conn:
                await conn.execute(records.DEAD_LETTER_COPIED, message.recorded_key)
        except Exception as exc:  # noqa: BLE001 - best effort, see above
            logs.event(
                logging.WARNING,
                "could not mark the dead-letter copy as sent",
                "dead_letter",
                error=str(classify(exc))[:300],
                **message.log_fields(),
            )

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the database answers a trivial query within the timeout."""
        return await self.probe(timeout_s) is None

    async def unavailable(self, timeout_s: float = 2.0) -> str | None:
        """None when the database answers (and sqs2pg's table is there), else why not, in one line (no password)."""
        problem = await self.probe(timeout_s)
        return None if problem is None else describe_database_error(problem, self._settings.redacted_database_url())

    async def probe(self, timeout_s: float = 2.0) -> Exception | None:
        """None when the database answers a trivial query within the timeout and sqs2pg's table is there, else
        what went wrong."""
        try:
            async with self.pool.acquire(timeout=timeout_s) as conn:
                migrated = await conn.fetchval(records.MIGRATED, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is for the log
            return exc
        if migrated != 2:
            # Messages would only fail and burn their receive counts: wait for the schema like for the server.
            return SchemaMissing(
                "table sqs2pg_idempotency does not exist"
                if migrated == 0
                else "table sqs2pg_idempotency is older than this version of sqs2pg"
            )
        self.last_success = time.monotonic()
        return None

    async def prune(self, retention_s: float, batch_size: int, pause_s: float = 0.05) -> int | None:
        """Delete expired idempotency records (retention.py); None if another replica is pruning."""
        return await retention.prune(self.pool, retention_s, batch_size, pause_s)
