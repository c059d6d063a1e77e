"""anonymous visitors (the tracking spec's anonymousId, its held events, its link to a
customer), and receipts found by event id (a Shopify refund names only its order)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "anonymous_identity",
        sa.Column("anonymous_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("anonymous_id"),
    )
    op.create_index(
        op.f("ix_anonymous_identity_customer_id"), "anonymous_identity", ["customer_id"]
    )
    op.create_table(
        "anonymous_event",
        sa.Column("anonymous_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("message", sa.JSON(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("anonymous_id", "message_id"),
    )
    op.create_index(op.f("ix_anonymous_event_held_at"), "anonymous_event", ["held_at"])
    op.create_index("ix_ingest_receipt_event_id", "ingest_receipt", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_ingest_receipt_event_id", table_name="ingest_receipt")
    op.drop_index(op.f("ix_anonymous_event_held_at"), table_name="anonymous_event")
    op.drop_table("anonymous_event")
    op.drop_index(op.f("ix_anonymous_identity_customer_id"), table_name="anonymous_identity")
    op.drop_table("anonymous_identity")
