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

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..errors import DeadLetteredBefore, Outcome

CLAIM_KEY = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING true
"""
# All the keys of a shared transaction claimed in one round trip (RETURNING the ones that were new).
CLAIM_KEYS = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[])
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key
"""
KEY_RECORD = """
SELECT body_sha256, status, error_kind, reason, dead_letter_copied FROM sqs2pg_idempotency WHERE idempotency_key = $1
"""
# A dead-lettering is recorded before the copy to the DLQ. A record of an earlier dead-lettering of the same
# key (a redriven copy that failed again) is taken over; a committed one is never touched (a key reused
# with another body is dead-lettered without a record: the commit keeps the key).
RECORD_DEAD_LETTER = """
INSERT INTO sqs2pg_idempotency
    (idempotency_key, body_sha256, queue_name, message_id, status, error_kind, reason)
VALUES ($1, $2, $3, $4, 'dead_lettered', $5, $6)
ON CONFLICT (idempotency_key) DO UPDATE
    SET body_sha256 = EXCLUDED.body_sha256, message_id = EXCLUDED.message_id, error_kind = EXCLUDED.error_kind,
        reason = EXCLUDED.reason, dead_letter_copied = false, committed_at = now()
    WHERE sqs2pg_idempotency.status = 'dead_lettered'
"""
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
# The handler found the message's effect already there (AlreadyApplied): its transaction was rolled back, and
# this records the key as a duplicate, so its status can be told. A dead-lettered record (a redriven copy whose
# effect was there) becomes the duplicate's; a committed one stays.
RECORD_DUPLICATE = """
INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id, status)
VALUES ($1, $2, $3, $4, 'duplicate')
ON CONFLICT (idempotency_key) DO UPDATE
    SET status = 'duplicate', error_kind = NULL, reason = NULL, dead_letter_copied = false, committed_at = now(),
        message_id = EXCLUDED.message_id, body_sha256 = EXCLUDED.body_sha256
    WHERE sqs2pg_idempotency.status = 'dead_lettered'
"""
# 0 when the table is missing, 1 when it is there but older than this version, 2 when it is current (the
# newest migration's table, 0003's, is there).
MIGRATED = """
SELECT CASE WHEN to_regclass('sqs2pg_idempotency') IS NULL THEN 0
            WHEN to_regclass('sqs2pg_drill') IS NOT NULL THEN 2
            ELSE 1 END
"""
_LOOKUP = """
SELECT idempotency_key, status, queue_name, message_id, committed_at, error_kind, reason
FROM sqs2pg_idempotency WHERE idempotency_key = ANY($1::text[])
"""
MAX_KEYS = 1000  # per lookup


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
