"""Quarantined groups (SQS2PG_ON_PERMANENT_ERROR=quarantine_group): the table every replica shares.

A group is quarantined when one of its messages is dead-lettered (store.py, in the transaction that records
the dead-lettering); from then on its later messages follow it to the DLQ, in order, with reason
``group_quarantined``. An operator ends it in one of two ways:

- ``sqs2pg dlq redrive --group G``: the group is marked ``releasing``, its messages are moved back from the DLQ
  in order (redriven copies of a releasing group are applied; a message sent meanwhile still goes to the DLQ,
  behind them, and the redrive moves it back too), and when none is left the quarantine ends. If a redriven
  copy fails again, the group is quarantined again by it, and the redrive says so.
- ``sqs2pg quarantine release G``: the quarantine ends and the group's next messages are applied; what is in
  the DLQ stays there (for messages that are not needed any more).
"""

from __future__ import annotations

import asyncpg

# Which of these (queue, group) pairs are quarantined, by which message, in which state (store.py).
QUARANTINED = """
SELECT queue_name, message_group_id, message_id, state FROM sqs2pg_quarantined_groups
WHERE (queue_name, message_group_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
# A group's message was dead-lettered: quarantine the group, or quarantine it again if a redrive was releasing
# it (a redriven copy failed again: the messages behind it must stay behind it) (store.py).
QUARANTINE = """
INSERT INTO sqs2pg_quarantined_groups (queue_name, message_group_id, message_id, idempotency_key, error_kind, reason)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (queue_name, message_group_id) DO UPDATE
    SET state = 'quarantined', message_id = EXCLUDED.message_id, idempotency_key = EXCLUDED.idempotency_key,
        error_kind = EXCLUDED.error_kind, reason = EXCLUDED.reason, quarantined_at = now()
    WHERE sqs2pg_quarantined_groups.state = 'releasing'
"""
# A queue sqs2pg knows without SQS_QUEUE_URLS: one it applied messages from (a group's position names it) or
# quarantined a group of.
KNOWN_QUEUE = """
SELECT EXISTS (SELECT FROM sqs2pg_group_positions WHERE queue_name = $1)
    OR EXISTS (SELECT FROM sqs2pg_quarantined_groups WHERE queue_name = $1)
"""
_COUNTS = "SELECT queue_name, count(*) AS n FROM sqs2pg_quarantined_groups GROUP BY 1"


async def counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Quarantined groups per queue name."""
    return {r["queue_name"]: int(r["n"]) for r in await conn.fetch(_COUNTS)}


async def groups(conn: asyncpg.Connection, queue: str | None = None) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM sqs2pg_quarantined_groups WHERE $1::text IS NULL OR queue_name = $1"
            " ORDER BY queue_name, quarantined_at",
            queue,
        )
    )


async def release(conn: asyncpg.Connection, group: str, queue: str | None = None) -> list[str]:
    """End the group's quarantine (in every queue, or in ``queue``); returns the queues it was quarantined in."""
    rows = await conn.fetch(
        "DELETE FROM sqs2pg_quarantined_groups WHERE message_group_id = $1 AND ($2::text IS NULL OR queue_name = $2)"
        " RETURNING queue_name",
        group,
        queue,
    )
    return [r["queue_name"] for r in rows]


async def start_releasing(conn: asyncpg.Connection, queue: str, group: str) -> bool:
    """A redrive of the group begins: its redriven copies are applied from now on. False if not quarantined."""
    status = await conn.execute(
        "UPDATE sqs2pg_quarantined_groups SET state = 'releasing' WHERE queue_name = $1 AND message_group_id = $2",
        queue,
        group,
    )
    return str(status).endswith(" 1")


async def finish_releasing(conn: asyncpg.Connection, queue: str, group: str) -> asyncpg.Record | None:
    """The redrive found none of the group's messages left in the DLQ: end the quarantine. Returns the row if
    the group was quarantined again meanwhile (a redriven copy failed again), and then keeps it."""
    await conn.execute(
        "DELETE FROM sqs2pg_quarantined_groups WHERE queue_name = $1 AND message_group_id = $2 AND state = 'releasing'",
        queue,
        group,
    )
    return await conn.fetchrow(
        "SELECT * FROM sqs2pg_quarantined_groups WHERE queue_name = $1 AND message_group_id = $2", queue, group
    )
