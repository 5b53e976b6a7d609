"""PostgreSQL: the one transaction that applies a message together with its idempotency record.

What happens when a commit fails (connection reset, failover, timeout): the exception is classified here
(``errors.classify``: retryable) and returned as the message's result; the message is not deleted from SQS.
Tried again, either the commit did not happen and it is applied now, or it happened unheard: the idempotency
record is there with the same body hash, ``apply`` returns DUPLICATE and the message is deleted without applying
it twice. That is the whole exactly-once argument.

In the statement that claims its key, a message moves its group's position (records.py): one older than what
its group already applied is never applied but dead-lettered as ``out_of_order``, whichever replica applied it.

Several messages may share one transaction (heads of different groups, and runs of a group in order, runs.py):
BEGIN, their records and positions in one statement with the built-in handler's rows (handler.Fused; another
handler's batch form, or each one's handler, in a statement of its own), COMMIT: three round trips for ten
messages. If anything fails in it (a bad body, a constraint, a duplicate, a lost connection, a COMMIT never
answered), each message is then applied at once alone, getting its own outcome as if it had been alone (a
shared COMMIT that did happen shows up as duplicates); once one of a group's fails, its later ones are Behind.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg

from ..config import Settings
from ..errors import (
    AVAILABILITY_KINDS,
    AlreadyApplied,
    Behind,
    GroupQuarantined,
    IdempotencyKeyReused,
    NotAttempted,
    Outcome,
    PermanentError,
    Sqs2pgError,
    classify,
    with_text,
    without_values,
)
from ..handler import Handler, batch_form, fused_form
from ..message import Message
from ..observe import logs
from . import drill, quarantine, records, retention, runs
from .pool import Connections
from .tx import rollback


class _Separately(Exception):
    trace_kind = "separately"  # the messages cannot be settled together: each in its own transaction (not an error)


# In the one-by-one pass after a shared transaction failed: this many "database unavailable" failures and
# the rest are failed alike without trying (a failover would otherwise cost a connect timeout per message).
_UNAVAILABLE_GIVE_UP = 2


class Store(Connections):
    def __init__(self, settings: Settings, handler: Handler) -> None:
        super().__init__(settings)
        # drill messages (`sqs2pg drill`) go to sqs2pg's drill table, never to the user's handler
        self._handler = drill.routed(handler)
        self._many = drill.routed_many(handler, batch_form(handler))
        self._fused = fused_form(handler)  # its rows in the statement that claims the keys: three round trips
        self._claim_fused = runs.claim_many(self._fused.sql) if self._fused is not None else ""
        self.prepare = getattr(handler, "prepare", None)  # SQS2PG_MAPPING reads its tables' columns first

    async def apply(self, message: Message) -> Outcome:
        """Apply one message in one transaction with its idempotency record: COMMITTED or DUPLICATE, or it raises."""
        key = message.idempotency_key  # InvalidMessage when the key is missing or malformed
        async with self._connection([message]) as conn:
            outcome = await self._apply_in(conn, message, key)
        self.last_success = time.monotonic()
        return outcome

    async def apply_many(self, messages: list[Message]) -> list[Outcome | Sqs2pgError]:
        """Apply messages (of different groups, or runs of one, in order): together in one transaction when they all
        go through, else each in its own. Returns each message's outcome, or the classified error that failed it
        (Behind for a group's messages after one that failed): it raises nothing else. With
        SQS2PG_ON_PERMANENT_ERROR=quarantine_group, a message of a quarantined group is not applied: its result is
        GroupQuarantined (a redriven copy is applied while `dlq redrive --group` releases the group)."""
        if self._settings.on_permanent_error != "quarantine_group":
            return await self._apply_many(messages)
        try:
            blocked = await self._quarantined(messages)
        except Exception as exc:  # noqa: BLE001 - the first is failed, the rest held (or behind it), not failed
            passes = runs.Passes()
            return [passes.result(messages[0], classify(exc)), *passes.rest(messages[1:], NotAttempted())]
        if not blocked:
            return await self._apply_many(messages)
        rest = iter(await self._apply_many([m for m in messages if m not in blocked]))
        return [blocked[m] if m in blocked else next(rest) for m in messages]

    async def _quarantined(self, messages: list[Message]) -> dict[Message, Sqs2pgError]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                quarantine.QUARANTINED, [m.queue_name for m in messages], [m.group_id for m in messages]
            )
        by_group = {(r["queue_name"], r["message_group_id"]): r for r in rows}
        blocked: dict[Message, Sqs2pgError] = {}
        for m in messages:
            row = by_group.get((m.queue_name, m.group_id))
            if row is not None and not (row["state"] == "releasing" and m.redriven):
                blocked[m] = GroupQuarantined(
                    f"group {m.group_id!r} is quarantined since message {row['message_id']} was dead-lettered"
                )
        return blocked

    async def _apply_many(self, messages: list[Message]) -> list[Outcome | Sqs2pgError]:
        if not messages:
            return []
        if len(messages) > 1 or self._fused is not None:  # fused, one message alone costs a round trip less too
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
        results: list[Outcome | Sqs2pgError] = []
        unavailable = 0
        passes = runs.Passes()
        for i, message in enumerate(messages):
            if passes.behind(message):
                results.append(Behind())
                continue
            try:
                results.append(passes.result(message, await self.apply(message)))
            except Exception as exc:  # noqa: BLE001 - this message's failure, classified here once
                error = self._failed(exc, message)
                results.append(passes.result(message, error))
                if error.kind in AVAILABILITY_KINDS:
                    unavailable += 1
                    if unavailable == _UNAVAILABLE_GIVE_UP:  # the database is gone: do not try the rest now
                        return results + passes.rest(messages[i + 1 :], NotAttempted())
        return results

    def _failed(self, exc: Exception, message: Message) -> Sqs2pgError:
        """What failed the message's transaction, classified, quoting none of its body's values and no row (with
        SQS2PG_ERROR_DETAIL=full: PostgreSQL's DETAIL and all, for debugging)."""
        error = classify(exc)
        if self._settings.error_detail != "full":
            return without_values(error, message.values)
        detail = getattr(exc, "detail", None)
        return with_text(error, f"{error} DETAIL: {detail}") if detail else error

    async def _apply_together(self, messages: list[Message]) -> list[Outcome | Sqs2pgError]:
        """One transaction for all of them, or an exception (then apply_many tries them one by one)."""
        if not runs.in_order(messages):
            raise _Separately()  # a run whose order cannot be told: each message checked on its own
        order_keys = [m.order_keys for m in messages]
        claim = (
            [m.idempotency_key for m in messages],
            [m.body_sha256 for m in messages],
            [m.queue_name for m in messages],
            [m.message_id for m in messages],
            [m.group_id for m in messages],
            [m.queue_created for m in messages],
            [None if sequence is None else str(sequence) for sequence, _ in order_keys],
            [sent for _, sent in order_keys],
        )
        fused = None if any(drill.is_drill(m) for m in messages) else self._fused
        if fused is not None:
            for message in messages:  # a body it cannot take: one by one, where it gets its own error
                fused.check(message)
        async with self._connection(messages) as conn:
            await conn.execute(self._begin)
            try:
                if fused is not None:
                    row = await conn.fetchrow(self._claim_fused, *claim, *fused.args(messages))
                    if not row["together"] or row["applied"] != len(messages):
                        raise _Separately()  # a duplicate, out of order, an effect there already: one by one
                elif not await conn.fetchval(runs.CLAIM_MANY, *claim):
                    raise _Separately()  # a duplicate, a key twice, out of order: each in its own transaction
                elif self._many is not None:  # several of a group go in their order
                    await self._many(conn, messages)
                else:
                    for message in messages:
                        await self._handler(conn, message)
            except BaseException:
                await rollback(conn)
                raise
            status = await conn.execute("COMMIT")
        if status != "COMMIT":
            raise _Separately()  # a handler swallowed a database error: find out whose, one at a time
        self.last_success = time.monotonic()
        return [Outcome.COMMITTED] * len(messages)

    async def _apply_in(self, conn: asyncpg.Connection, message: Message, key: str) -> Outcome:
        # BEGIN and COMMIT by hand, because the COMMIT's status must be read: a handler that catches a
        # database error leaves the transaction aborted, and PostgreSQL answers that COMMIT with ROLLBACK.
        await conn.execute(self._begin)
        try:
            # Claiming the key first also serialises two replicas that got the same key: the second waits on the
            # key's lock (sqs2pg_claim) until the first commits, then finds its record.
            claim = await conn.fetchrow(
                records.CLAIM,
                key,
                message.body_sha256,
                message.queue_name,
                message.message_id,
                message.group_id,
                message.queue_created,
                *message.order_keys,
            )
            if not claim["new"]:
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
                    return records.seen_before(record)
            elif not claim["in_order"]:
                raise await records.out_of_order(conn, message)
            try:
                await self._handler(conn, message)
            except AlreadyApplied:
                await conn.execute("ROLLBACK")
                await conn.execute(
                    records.RECORD_DUPLICATE, key, message.body_sha256, message.queue_name, message.message_id
                )
                return Outcome.DUPLICATE
        except BaseException:
            await rollback(conn)
            raise
        status = await conn.execute("COMMIT")
        if status != "COMMIT":
            raise PermanentError(
                f"the transaction was rolled back ({status}): the handler caught a database error and went on",
                kind="handler",
            )
        return Outcome.COMMITTED

    async def record_dead_letter(self, message: Message, error: Sqs2pgError) -> bool:
        """Record, durably and before the copy to the DLQ, that this message is dead-lettered and why (records.py);
        with SQS2PG_ON_PERMANENT_ERROR=quarantine_group, quarantine its group in the same transaction. Whether a
        record was written; a classified error when the database cannot take it (the message waits, tried again)."""
        quarantine_group = self._settings.on_permanent_error == "quarantine_group"
        quarantining = quarantine_group and not isinstance(error, GroupQuarantined)
        if message.recorded_key is None and not quarantining and message.order_keys == (None, None):
            return False
        try:
            async with self._connection([message], "dead_letter_record") as conn:
                return await records.record_dead_letter(conn, message, error, quarantining, self._begin)
        except Exception as exc:
            raise classify(exc) from exc

    async def write_status(self, key: str) -> dict[str, Any]:
        """A write's status by its key (records.py): GET /writes/{key}."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            return (await records.lookup(conn, [key]))[key]

    async def queue_orders(self) -> dict[tuple[str, int], str]:
        """Each queue's verdict on its server's SequenceNumbers, by (queue name, CreatedTimestamp)."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            rows = await conn.fetch(records.QUEUE_ORDERS)
        return {(r["queue_name"], r["queue_created"]): r["verdict"] for r in rows}

    async def judged(self, queue_name: str, queue_created: int, verdict: str) -> None:
        """Store a queue's verdict (the first one stored stays)."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            await conn.execute(records.JUDGED, queue_name, queue_created, verdict)

    async def quarantined_counts(self) -> dict[str, int]:
        """Quarantined groups per queue name."""
        async with self.pool.acquire(timeout=self._settings.db_connect_timeout_s) as conn:
            return await quarantine.counts(conn)

    async def dead_letter_copied(self, message: Message) -> None:
        """The copy to the DLQ was sent: a redelivery only needs deleting. Best effort (a redelivery otherwise
        sends the copy again, which the DLQ drops as a duplicate within 5 minutes)."""
        try:
            async with self._connection() as conn:
                await records.dead_letter_copied(conn, message)
        except Exception as exc:  # noqa: BLE001 - best effort, see above
            logs.event(
                logging.WARNING,
                "could not mark the dead-letter copy as sent",
                "dead_letter",
                error=str(classify(exc))[:300],
                **message.log_fields(),
            )

    async def prune(self, retention_s: float | None, batch_size: int, pause_s: float = 0.05) -> int | None:
        """Delete expired idempotency records (retention.py); None if another replica is pruning."""
        return await retention.prune(self.pool, retention_s, batch_size, pause_s, self._begin)
