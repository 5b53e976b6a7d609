"""sqs2pg's own rows in ``sqs2pg_idempotency``: the statements of an idempotency record's life, and a write's
status read from them.

A record is written in the transaction that applies its message (``committed``), or when the message is
dead-lettered (``dead_lettered``, with the reason, before the copy to the DLQ), or when the handler found
the message's effect already there (``duplicate``). The status answers (one for `sqs2pg status`,
Producer.status and GET /writes/{key}):

- ``committed``: applied, once (a later copy with the same key and body is recognised and not applied again);
- ``duplicate``: its effect was already there when it arrived (the handler said so, e.g. an event whose
  idempotency record had been pruned), so it was not applied again;
- ``dead_lettered``: it failed permanently and is in the dead-letter queue; ``error_kind`` and ``reason`` say
  why (``sqs2pg dlq redrive`` brings it back);
- ``unknown``: no record: not applied yet (still in the queue, or never sent), or its record was pruned after
  SQS2PG_IDEMPOTENCY_RETENTION_DAYS.

Never the body: an answer carries the key, the queue, the message id, the time and the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..errors import DeadLetteredBefore, Outcome, OutOfOrder, Sqs2pgError
from ..message import Message
from ..sqs import deadletter
from . import quarantine
from .tx import transaction

# A group's position is the newest of what it applied, by each key: SequenceNumber and SentTimestamp (either may be
# missing). A message is older than it when every key it is checked by (Message.order_keys) is strictly older:
# SequenceNumber alone where the server's numbers were seen in order, SentTimestamp alone where they were not
# (one millisecond holds many messages: only strictly older counts), both until the queue is judged (on SQS the
# numbers then never call a newer message older). A queue made again (another CreatedTimestamp) starts over.
_OLDER = """(
    ({new}.sequence_number IS NOT NULL OR {new}.sent_ms IS NOT NULL)
    AND ({new}.sequence_number IS NULL OR coalesce({pos}.sequence_number > {new}.sequence_number, false))
    AND ({new}.sent_ms IS NULL OR coalesce({pos}.sent_ms > {new}.sent_ms, false))
)"""
_SAME_QUEUE = "p.queue_created = EXCLUDED.queue_created"
_MOVE_WHERE = f"""
ON CONFLICT (queue_name, message_group_id) DO UPDATE
    SET sequence_number = CASE WHEN {_SAME_QUEUE}
            THEN greatest(p.sequence_number, EXCLUDED.sequence_number) ELSE EXCLUDED.sequence_number END,
        sent_ms = CASE WHEN {_SAME_QUEUE} THEN greatest(p.sent_ms, EXCLUDED.sent_ms) ELSE EXCLUDED.sent_ms END,
        queue_created = EXCLUDED.queue_created, message_id = EXCLUDED.message_id, updated_at = now()
    WHERE NOT ({_SAME_QUEUE} AND {{older}})
"""
_MOVE = _MOVE_WHERE.format(older=_OLDER.format(new="EXCLUDED", pos="p"))
# A run moves its group's position to its last message where its first (``firsts``, runs.CLAIM_MANY) is not older.
RUN_OLDER = "EXISTS (SELECT FROM firsts f WHERE f.q = p.queue_name AND f.g = p.message_group_id AND {})"
MOVE_RUN = _MOVE_WHERE.format(older=RUN_OLDER.format(_OLDER.format(new="f", pos="p")))
POSITIONS = (
    "sqs2pg_group_positions AS p (queue_name, message_group_id, queue_created, sequence_number, sent_ms, message_id)"
)
# Claim a message's key and move its group's position to the message, in one round trip. ``new``: the key was not
# there; ``in_order``: the message is not older than what its group already applied (without an order key:
# not checked). The position's upsert sees the latest committed position (ON CONFLICT re-reads it), so a replica
# that applied a later message of the group a moment ago is seen too. Parameters: key, body hash, queue, message
# id, group, queue CreatedTimestamp, SequenceNumber, SentTimestamp (Message.order_keys).
CLAIM = f"""
WITH claimed AS (
    SELECT FROM sqs2pg_claim(ARRAY[$1::text], ARRAY[$2::bytea], ARRAY[$3::text], ARRAY[$4::text])
), moved AS (
    INSERT INTO {POSITIONS}
    SELECT $3, $5, $6, $7, $8, $4
    WHERE ($7::numeric IS NOT NULL OR $8::bigint IS NOT NULL) AND EXISTS (SELECT FROM claimed)
    {_MOVE}
    RETURNING 1
)
SELECT EXISTS (SELECT FROM claimed) AS new,
       ($7::numeric IS NULL AND $8::bigint IS NULL OR EXISTS (SELECT FROM moved)) AS in_order
"""
# Where a group stands: the newest message it applied (to name it when an older one arrives after it).
POSITION = """
SELECT message_id, sequence_number, sent_ms FROM sqs2pg_group_positions
WHERE queue_name = $1 AND message_group_id = $2
"""
# A dead-lettered message moves its group's position too: one older than it is out of order as after a commit.
ADVANCE = f"""
INSERT INTO {POSITIONS} VALUES ($1, $2, $3, $4, $5, $6)
{_MOVE}
"""
KEY_RECORD = """
SELECT body_sha256, status, error_kind, reason, dead_letter_copied FROM sqs2pg_idempotency WHERE idempotency_key = $1
"""
# A dead-lettering is recorded before the copy to the DLQ. A record of an earlier dead-lettering of the key (a
# redriven copy that failed again) is taken over; a committed one never (a key reused with another body is
# dead-lettered without a record). sqs2pg_record (migration 0005) locks the key as a claim does.
RECORD_DEAD_LETTER = "SELECT sqs2pg_record($1, $2, $3, $4, 'dead_lettered', $5, $6, $7::jsonb)"
DEAD_LETTER_COPIED = """
UPDATE sqs2pg_idempotency SET dead_letter_copied = true WHERE idempotency_key = $1 AND status = 'dead_lettered'
"""
# A redriven copy of a dead-lettered message (or a new body under its key) is applied: its record becomes the
# commit's, in the same transaction (a failure rolls that back too, and the record stays dead-lettered).
CLEAR_DEAD_LETTER = """
UPDATE sqs2pg_idempotency
SET status = 'committed', error_kind = NULL, reason = NULL, dead_letter_copied = false, committed_at = now(),
    message_id = $2, body_sha256 = $3
WHERE idempotency_key = $1 AND status = 'dead_lettered'
"""
# The handler found the message's effect already there (AlreadyApplied): after the rollback, the key is recorded
# as a duplicate (a dead-lettered record, a redriven copy whose effect was there, becomes it; a committed stays).
RECORD_DUPLICATE = "SELECT sqs2pg_record($1, $2, $3, $4, 'duplicate', NULL, NULL, NULL)"
# 0: the table is missing; 1: older than this version; 2: current (0005's partitioned table).
MIGRATED = """
SELECT CASE WHEN to_regclass('sqs2pg_idempotency') IS NULL THEN 0
            WHEN (SELECT relkind FROM pg_class WHERE oid = to_regclass('sqs2pg_idempotency')) = 'p' THEN 2
            ELSE 1 END
"""
_LOOKUP = """
SELECT idempotency_key, status, queue_name, message_id, committed_at, error_kind, reason
FROM sqs2pg_idempotency WHERE idempotency_key = ANY($1::text[])
"""
MAX_KEYS = 1000  # per lookup
# Each queue's verdict on its SequenceNumbers (consume/order.py): "sent" replaces "sequence", never the reverse.
QUEUE_ORDERS = "SELECT queue_name, queue_created, verdict FROM sqs2pg_queue_order"
JUDGED = """
INSERT INTO sqs2pg_queue_order AS o (queue_name, queue_created, verdict) VALUES ($1, $2, $3)
ON CONFLICT (queue_name, queue_created) DO UPDATE SET verdict = 'sent', judged_at = now()
    WHERE EXCLUDED.verdict = 'sent' AND o.verdict <> 'sent'
"""


def safe_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: a NUL or a lone surrogate (JSON escapes SQS accepts in a body, an
    attribute, an envelope's id) written out as its escape."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def storable_key(key: str) -> str:
    """The key a record is written under: the key itself, or, when PostgreSQL cannot store it, ``sha256:`` and
    its hash (the reason then says so)."""
    if safe_text(key) == key:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


async def record_dead_letter(
    conn: asyncpg.Connection, message: Message, error: Sqs2pgError, quarantining: bool, begin: str = "BEGIN"
) -> bool:
    """In one transaction: the record that this message is dead-lettered and why, its group's position, and with
    SQS2PG_ON_PERMANENT_ERROR=quarantine_group its group's quarantine. Returns whether a record was written (not
    when it has no valid key, or its key belongs to a commit)."""
    key = message.recorded_key
    reason = safe_text(str(error))[:1000]
    if key is not None and (stored := storable_key(key)) != key:
        reason = f"{reason[:900]} (its idempotency key cannot be stored as it is: recorded as {stored})"
        key = stored
    written = False
    async with transaction(conn, begin):
        if key is not None:
            written = await conn.fetchval(
                RECORD_DEAD_LETTER,
                key,
                message.body_sha256,
                message.queue_name,
                message.message_id,
                error.kind,
                reason,
                json.dumps(deadletter.stored(deadletter.originals(message))),
            )
        if message.order_keys != (None, None):
            await conn.execute(
                ADVANCE,
                message.queue_name,
                message.group_id,
                message.queue_created,
                *message.order_keys,
                message.message_id,
            )
        if quarantining:
            await conn.execute(
                quarantine.QUARANTINE,
                message.queue_name,
                message.group_id,
                message.message_id,
                key,
                error.kind,
                reason,
            )
    return bool(written)


async def kept_attributes(conn: asyncpg.Connection, key: str) -> dict[str, Any] | None:
    """A dead-lettered message's own attributes, as its record kept them (sqs/deadletter.py's stored form)."""
    kept = await conn.fetchval(
        "SELECT attributes FROM sqs2pg_idempotency WHERE idempotency_key = $1 AND status = 'dead_lettered'",
        storable_key(key),
    )
    return None if kept is None else dict(json.loads(kept))


async def dead_letter_copied(conn: asyncpg.Connection, message: Message) -> None:
    """The copy to the DLQ was sent: a redelivery only needs deleting."""
    if (key := message.recorded_key) is not None:
        await conn.execute(DEAD_LETTER_COPIED, storable_key(key))


async def out_of_order(conn: asyncpg.Connection, message: Message) -> OutOfOrder:
    """The message is older than what its group already applied: why, naming the newer message."""
    later = await conn.fetchrow(POSITION, message.queue_name, message.group_id)
    seq, sent = message.order_keys
    mine = f"SequenceNumber {seq}" if seq is not None else f"SentTimestamp {sent}"
    named = "a newer one"
    if later is not None:
        theirs = (
            f"SequenceNumber {later['sequence_number']}" if seq is not None else f"SentTimestamp {later['sent_ms']}"
        )
        named = f"message {later['message_id']} ({theirs})"
    return OutOfOrder(
        f"message {message.message_id} ({mine}) of group {message.group_id!r} arrived after {named} was already "
        "applied: the SQS server handed the group out of order"
    )


def seen_before(record: asyncpg.Record | None) -> Outcome:
    """The key was there already: DUPLICATE, unless sqs2pg dead-lettered it and its copy to the DLQ is not known
    to have been sent; then DeadLetteredBefore, and it is dead-lettered again (never applied)."""
    if record is None or record["status"] != "dead_lettered" or record["dead_letter_copied"]:
        return Outcome.DUPLICATE
    raise DeadLetteredBefore(record["reason"] or "dead-lettered before", kind=record["error_kind"] or "dead_lettered")


def answer(key: str, row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {"key": key, "status": "unknown"}
    out: dict[str, Any] = {
        "key": key,
        "status": row["status"],
        "queue": row["queue_name"],
        "message_id": row["message_id"],
        "at": row["committed_at"].isoformat(),
    }
    if row["status"] == "dead_lettered":
        out.update(error_kind=row["error_kind"], reason=row["reason"])
    return out


async def lookup(conn: asyncpg.Connection | asyncpg.Pool, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each key's status answer, in the order given."""
    if len(keys) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} keys per lookup")
    rows = {r["idempotency_key"]: r for r in await conn.fetch(_LOOKUP, list(keys))}
    return {k: answer(k, rows.get(k)) for k in keys}
