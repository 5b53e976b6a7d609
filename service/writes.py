"""A write's status, read from sqs2pg's idempotency records: one answer for `sqs2pg status`, Producer.status
and GET /writes/{key}.

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

_LOOKUP = """
SELECT idempotency_key, status, queue_name, message_id, committed_at, error_kind, reason
FROM sqs2pg_idempotency WHERE idempotency_key = ANY($1::text[])
"""
MAX_KEYS = 1000  # per lookup


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
    """Each key's answer, in the order given."""
    if len(keys) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} keys per lookup")
    rows = {r["idempotency_key"]: r for r in await conn.fetch(_LOOKUP, list(keys))}
    return {k: answer(k, rows.get(k)) for k in keys}
