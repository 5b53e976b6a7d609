"""Idempotency records that say how a message ended: committed, or dead-lettered with its reason.

A dead-lettered message is recorded before its copy to the dead-letter queue, so a redelivery of it (the
delete from the source queue failed, or the process died between copy and delete) is recognised and
finished, never applied after the rest of its group.

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


def downgrade() -> None:
    # A dead-lettered record would read as a commit in 0001's schema: drop those first.
    op.execute("DELETE FROM sqs2pg_idempotency WHERE status = 'dead_lettered'")
    op.drop_column("sqs2pg_idempotency", "dead_letter_copied")
    op.drop_column("sqs2pg_idempotency", "reason")
    op.drop_column("sqs2pg_idempotency", "error_kind")
    op.drop_constraint("sqs2pg_idempotency_status", "sqs2pg_idempotency")
    op.drop_column("sqs2pg_idempotency", "status")
