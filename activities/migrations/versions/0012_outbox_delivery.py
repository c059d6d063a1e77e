"""outbox delivery state: the courier's status, attempts, lease and the provider's answer

Rows already in the outbox were delivered by being written there (the only channel
then): they arrive as ``no_channel``, so configuring a provider later never sends an old
engagement.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="no_channel")
        )
        batch_op.add_column(sa.Column("channel_used", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tried", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("provider_ref", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
    op.execute("UPDATE outbox SET tried = '[]'")
    # The defaults only filled the rows already there; new rows say what they are.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
        batch_op.alter_column("attempts", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_next_attempt_at")
        for column in (
            "delivered_at",
            "last_error",
            "provider_ref",
            "claimed_by",
            "claimed_until",
            "next_attempt_at",
            "tried",
            "attempts",
            "channel_used",
            "status",
        ):
            batch_op.drop_column(column)
