"""Idempotency records in daily partitions, so retention drops a day instead of deleting its rows one by one.

``sqs2pg_idempotency`` keeps its name and columns and becomes a table partitioned by ``committed_at``:

- ``sqs2pg_idempotency_pYYYYMMDD``: one UTC day each, created ahead by `sqs2pg migrate` and by the service
  (db/retention.py) and dropped whole once the day is past the retention;
- ``sqs2pg_idempotency_default``: every row no day takes (a day not created yet, a ``committed_at`` far in the
  past or the future): truncated when everything in it has expired, else pruned row by row;
- ``sqs2pg_idempotency_before``: a table that already had records (0.3's) is attached as it is, for everything
  committed before the day after tomorrow, without rewriting or rescanning it under a lock: a CHECK constraint is
  added NOT VALID and validated first, which reads the table while writes go on. It is pruned row by row like
  0.3's table until all of it has expired, then truncated.

A key is unique across the partitions, where no unique index can reach (one must include ``committed_at``):
every write of a record takes a transaction-level advisory lock on the key's hash and then looks for the key in a
fresh snapshot (a VOLATILE function's statements each take one), so two replicas racing on a key, on either side
of midnight, are serialised, and a redelivery on a later day still finds its key. ``sqs2pg_claim`` claims keys,
``sqs2pg_record`` writes a dead-lettered or duplicate record; each partition keeps a primary key on the key as a
check within its day.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLE = "sqs2pg_idempotency"
_BEFORE = "sqs2pg_idempotency_before"
_RANGE_CHECK = "sqs2pg_idempotency_before_range"

# Keys locked in one order (by hash), so two transactions claiming overlapping sets never deadlock on each other.
_FUNCTIONS = (
    """
CREATE OR REPLACE FUNCTION sqs2pg_lock_keys(keys text[]) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE h bigint;
BEGIN
    FOR h IN SELECT DISTINCT hashtextextended(k, 0) FROM unnest(keys) AS k ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(h);
    END LOOP;
END $$
""",
    # Claims the keys no record has yet (one row per key, the first given); returns the keys it claimed.
    """
CREATE OR REPLACE FUNCTION sqs2pg_claim(keys text[], hashes bytea[], queues text[], ids text[])
RETURNS SETOF text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM sqs2pg_lock_keys(keys);
    -- Each key looked up on its own, by each partition's primary key: a plan that hashes the whole table (which
    -- the planner picks for a NOT EXISTS while a day's partition is new and looks empty) cannot be chosen.
    RETURN QUERY
    WITH given AS (
        SELECT DISTINCT ON (k) k, h, q, m FROM unnest(keys, hashes, queues, ids) WITH ORDINALITY AS t(k, h, q, m, i)
        WHERE (SELECT true FROM sqs2pg_idempotency r WHERE r.idempotency_key = t.k LIMIT 1) IS NULL
        ORDER BY k, i
    ), claimed AS (
        INSERT INTO sqs2pg_idempotency (idempotency_key, body_sha256, queue_name, message_id)
        SELECT k, h, q, m FROM given
        RETURNING idempotency_key
    )
    SELECT idempotency_key FROM claimed;
END $$
""",
    # A dead-lettered or duplicate record: written where the key has none, or over a dead-lettered one (a redriven
    # copy that failed again, or whose effect was there); never over a commit. Whether it was written.
    """
CREATE OR REPLACE FUNCTION sqs2pg_record(
    key text, hash bytea, queue text, id text, new_status text, kind text, why text, attrs jsonb
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM sqs2pg_lock_keys(ARRAY[key]);
    UPDATE sqs2pg_idempotency
    SET status = new_status, body_sha256 = hash, message_id = id, error_kind = kind, reason = why,
        attributes = attrs, dead_letter_copied = false, committed_at = now()
    WHERE idempotency_key = key AND status = 'dead_lettered';
    IF FOUND THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT FROM sqs2pg_idempotency WHERE idempotency_key = key) THEN
        RETURN false;
    END IF;
    INSERT INTO sqs2pg_idempotency
        (idempotency_key, body_sha256, queue_name, message_id, status, error_kind, reason, attributes)
    VALUES (key, hash, queue, id, new_status, kind, why, attrs);
    RETURN true;
END $$
""",
)


def _execute(sql: str) -> None:
    op.execute(sa.text(sql))


def upgrade() -> None:
    bind = op.get_bind()
    _execute(f"LOCK TABLE {_TABLE} IN ACCESS EXCLUSIVE MODE")
    if bind.execute(sa.text(f"SELECT NOT EXISTS (SELECT FROM {_TABLE})")).scalar():
        _execute(f"ALTER TABLE {_TABLE} RENAME TO {_BEFORE}")
        _partitioned()
        _execute(f"DROP TABLE {_BEFORE}")
    else:
        _attach_existing()
    _execute(f"CREATE TABLE {_TABLE}_default PARTITION OF {_TABLE} DEFAULT")
    _execute(f"ALTER TABLE {_TABLE}_default ADD PRIMARY KEY (idempotency_key)")
    _execute(f"CREATE INDEX {_TABLE}_default_committed_at ON {_TABLE}_default (committed_at)")
    for function in _FUNCTIONS:
        _execute(function)


def _partitioned() -> None:
    """The partitioned table, with the columns, defaults and CHECK constraints of the table renamed to _BEFORE."""
    _execute(
        f"CREATE TABLE {_TABLE} (LIKE {_BEFORE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (committed_at)"
    )
    _execute(f"ALTER TABLE {_TABLE} DROP CONSTRAINT IF EXISTS {_RANGE_CHECK}")


def _attach_existing() -> None:
    """0.3's table with its records becomes the partition of everything before the day after tomorrow (UTC; a
    replica of 0.3 still writing during the migration stays inside it). Its CHECK is validated outside the lock,
    so the long read of a big table blocks no writes; the swap itself is a rename and an attach."""
    bind = op.get_bind()
    boundary = bind.execute(
        sa.text("SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '2 days') AT TIME ZONE 'UTC'")
    ).scalar()
    assert boundary is not None
    literal = boundary.isoformat()
    with op.get_context().autocommit_block():
        _execute(f"ALTER TABLE {_TABLE} DROP CONSTRAINT IF EXISTS {_RANGE_CHECK}")
        _execute(f"ALTER TABLE {_TABLE} ADD CONSTRAINT {_RANGE_CHECK} CHECK (committed_at < '{literal}') NOT VALID")
        _execute(f"ALTER TABLE {_TABLE} VALIDATE CONSTRAINT {_RANGE_CHECK}")
    _execute(f"ALTER TABLE {_TABLE} RENAME TO {_BEFORE}")
    _execute(f"ALTER INDEX IF EXISTS {_TABLE}_pkey RENAME TO {_BEFORE}_pkey")
    _execute(f"ALTER INDEX IF EXISTS {_TABLE}_committed_at RENAME TO {_BEFORE}_committed_at")
    _partitioned()
    _execute(f"ALTER TABLE {_TABLE} ATTACH PARTITION {_BEFORE} FOR VALUES FROM (MINVALUE) TO ('{literal}')")


def downgrade() -> None:
    """Back to one table: each key's newest record kept (the partitions never hold two of a key)."""
    _execute("DROP FUNCTION sqs2pg_record(text, bytea, text, text, text, text, text, jsonb)")
    _execute("DROP FUNCTION sqs2pg_claim(text[], bytea[], text[], text[])")
    _execute("DROP FUNCTION sqs2pg_lock_keys(text[])")
    _execute(f"CREATE TABLE {_TABLE}_single (LIKE {_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    _execute(
        f"INSERT INTO {_TABLE}_single SELECT DISTINCT ON (idempotency_key) * FROM {_TABLE}"
        " ORDER BY idempotency_key, committed_at DESC"
    )
    _execute(f"DROP TABLE {_TABLE}")
    _execute(f"ALTER TABLE {_TABLE}_single RENAME TO {_TABLE}")
    _execute(f"ALTER TABLE {_TABLE} ADD CONSTRAINT {_TABLE}_pkey PRIMARY KEY (idempotency_key)")
    _execute(f"CREATE INDEX {_TABLE}_committed_at ON {_TABLE} (committed_at)")
