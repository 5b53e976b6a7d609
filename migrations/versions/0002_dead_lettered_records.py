"""Idempotency records that say how a message ended (committed, or dead-lettered with its reason), and the
quarantined groups.

A dead-lettered message is recorded before its copy to the dead-letter queue, so a redelivery of it (the
delete from the source queue failed, or the process died between copy and delete) is recognised and
finished, never applied after the rest of its group. With SQS2PG_ON_PERMANENT_ERROR=quarantine_group, a
group whose message was dead-lettered is quarantined: every later message of it is dead-lettered too, until
an operator releases it. The quarantine is a row, so every replica sees it and it survives restarts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows are commits. Adding a column with a constant default rewrites nothing (PostgreSQL 11+).
    op.add_column(
        "sqs2pg_idempotency", sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'committed'"))
    )
    op.create_check_constraint(
        "sqs2pg_idempotency_status", "sqs2pg_idempotency", "status IN ('committed', 'dead_lettered')"
    )
    op.add_column("sqs2pg_idempotency", sa.Column("error_kind", sa.Text, nullable=True))
    op.add_column("sqs2pg_idempotency", sa.Column("reason", sa.Text, nullable=True))
    # the copy to the dead-letter queue is known to have been sent
    op.add_column(
        "sqs2pg_idempotency",
        sa.Column("dead_letter_copied", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )

    op.create_table(
        "sqs2pg_quarantined_groups",
        sa.Column("queue_name", sa.Text, primary_key=True),
        sa.Column("message_group_id", sa.Text, primary_key=True),
        sa.Column("message_id", sa.Text, nullable=False),  # the message whose dead-lettering quarantined it
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.Column("error_kind", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        # quarantined; or releasing: `sqs2pg dlq redrive --group` is moving its messages back, and redriven
        # copies are applied
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'quarantined'")),
        sa.Column("quarantined_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("state IN ('quarantined', 'releasing')", name="sqs2pg_quarantined_groups_state"),
    )


def downgrade() -> None:
    op.drop_table("sqs2pg_quarantined_groups")
    # A dead-lettered record would read as a commit in 0001's schema: drop those first.
    op.execute("DELETE FROM sqs2pg_idempotency WHERE status = 'dead_lettered'")
    op.drop_column("sqs2pg_idempotency", "dead_letter_copied")
    op.drop_column("sqs2pg_idempotency", "reason")
    op.drop_column("sqs2pg_idempotency", "error_kind")
    op.drop_constraint("sqs2pg_idempotency_status", "sqs2pg_idempotency")
    op.drop_column("sqs2pg_idempotency", "status")
