"""The failover drill's own table, the envelope an event arrived in, and the status `duplicate`.

- ``sqs2pg_drill``: `sqs2pg drill` sends messages marked with the attribute ``sqs2pg_drill``; sqs2pg applies
  them here, never through the user's handler, so a drill is safe on a live queue. No unique key on purpose:
  a message applied twice shows up as two rows, which is what the drill counts.
- ``events.envelope``: the built-in handler records whether the body came inside an SNS notification or an
  EventBridge event (SQS2PG_ENVELOPE).
- ``sqs2pg_idempotency.status`` may be ``duplicate``: the handler found the effect already there (an event
  whose record had been pruned), so `sqs2pg status` can say so instead of "unknown".

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sqs2pg_drill",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),  # the order of application
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("message_group_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("sent_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "applied_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")
        ),
    )
    op.create_index("sqs2pg_drill_run", "sqs2pg_drill", ["run_id", "id"])
    op.add_column("events", sa.Column("envelope", sa.Text, nullable=True))
    op.drop_constraint("sqs2pg_idempotency_status", "sqs2pg_idempotency")
    op.create_check_constraint(
        "sqs2pg_idempotency_status", "sqs2pg_idempotency", "status IN ('committed', 'dead_lettered', 'duplicate')"
    )


def downgrade() -> None:
    op.execute("UPDATE sqs2pg_idempotency SET status = 'committed' WHERE status = 'duplicate'")
    op.drop_constraint("sqs2pg_idempotency_status", "sqs2pg_idempotency")
    op.create_check_constraint(
        "sqs2pg_idempotency_status", "sqs2pg_idempotency", "status IN ('committed', 'dead_lettered')"
    )
    op.drop_column("events", "envelope")
    op.drop_table("sqs2pg_drill")
