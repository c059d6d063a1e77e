"""single customer view wallet engagement outcomes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("engagement_key", sa.String(length=256), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by_event", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("engagement_key"),
    )
    with op.batch_alter_table("wallet_offer", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_offer_customer_id"), ["customer_id"], unique=False
        )

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("location", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("preferred_channels", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("first_purchase_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("median_purchase_gap_days", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cohort", sa.String(length=16), nullable=True))

    with op.batch_alter_table("engagement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engagement", schema=None) as batch_op:
        batch_op.drop_column("outcome_at")
        batch_op.drop_column("outcome")

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("cohort")
        batch_op.drop_column("median_purchase_gap_days")
        batch_op.drop_column("last_purchase_at")
        batch_op.drop_column("first_purchase_at")
        batch_op.drop_column("preferred_channels")
        batch_op.drop_column("location")

    with op.batch_alter_table("wallet_offer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_offer_customer_id"))

    op.drop_table("wallet_offer")
