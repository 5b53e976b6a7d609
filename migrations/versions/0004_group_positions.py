"""Each message group's position: the newest message sqs2pg applied (or dead-lettered) in it, by SQS's
SequenceNumber and by SentTimestamp; and each queue's verdict on its server's SequenceNumbers (consume/order.py).

Written in the same transaction as the message, so a message older than what its group already applied (a server
that hands a group's messages to overlapping receives can deliver a later one first) is caught, across replicas
and restarts, and dead-lettered as ``out_of_order`` instead of applied. ``queue_created`` is the queue's
CreatedTimestamp: a queue deleted and made again under the same name (an emulator restarted) numbers its
messages afresh, and its groups' positions start over. Pruned with the idempotency records.

``sqs2pg_queue_order``: whether a queue's server was seen to number each group's messages in order
(``sequence``: its SequenceNumbers order them) or not (``sent``: only SentTimestamp can). The first replica to
judge a queue writes it; every replica, and every restart, starts from it.

``sqs2pg_idempotency.attributes``: a dead-lettered message's own attributes, kept in its record: a copy to the DLQ
that must leave some out (SQS takes 10, and sqs2pg's reason takes 4) loses none, since `sqs2pg dlq redrive`
restores them from here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sqs2pg_group_positions",
        sa.Column("queue_name", sa.Text, nullable=False),
        sa.Column("message_group_id", sa.Text, nullable=False),
        sa.Column("queue_created", sa.BigInteger, nullable=False),
        # SQS's SequenceNumber: up to 128 bits, compared as a number
        sa.Column("sequence_number", sa.Numeric, nullable=True),
        sa.Column("sent_ms", sa.BigInteger, nullable=True),  # SentTimestamp, where the numbers cannot be trusted
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("queue_name", "message_group_id", name="sqs2pg_group_positions_pkey"),
        # Every commit updates its group's row: with room left on each page and no index on what it changes
        # (updated_at has none; pruning scans this small table, one row per group), the update is HOT and
        # writes no index entry.
        postgresql_with={"fillfactor": "80"},
    )
    op.add_column("sqs2pg_idempotency", sa.Column("attributes", sa.dialects.postgresql.JSONB, nullable=True))
    op.create_table(
        "sqs2pg_queue_order",
        sa.Column("queue_name", sa.Text, nullable=False),
        sa.Column("queue_created", sa.BigInteger, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("judged_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("queue_name", "queue_created", name="sqs2pg_queue_order_pkey"),
        sa.CheckConstraint("verdict IN ('sequence', 'sent')", name="sqs2pg_queue_order_verdict"),
    )


def downgrade() -> None:
    op.drop_column("sqs2pg_idempotency", "attributes")
    op.drop_table("sqs2pg_queue_order")
    op.drop_table("sqs2pg_group_positions")
