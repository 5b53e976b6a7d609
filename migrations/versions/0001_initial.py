"""Initial schema: the idempotency records and the built-in handler's events table.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sqs2pg_idempotency",
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("body_sha256", postgresql.BYTEA, nullable=False),
        sa.Column("queue_name", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("committed_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    # pruning walks this index oldest first
    op.create_index("sqs2pg_idempotency_committed_at", "sqs2pg_idempotency", ["committed_at"])

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),  # bigserial
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("queue_name", sa.Text, nullable=False),
        sa.Column("message_group_id", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("sent_at", sa.TIMESTAMP(timezone=True), nullable=True),  # SQS SentTimestamp
        # clock_timestamp(), not now(): the moment of the insert, which is within the committing transaction
        sa.Column(
            "committed_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")
        ),
    )
    op.create_index("events_group_id", "events", ["message_group_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("sqs2pg_idempotency")
