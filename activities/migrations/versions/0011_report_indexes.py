"""indexes for the report's since: engagement.sent_at, engagement_credit.at

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_engagement_sent_at"), "engagement", ["sent_at"])
    op.create_index(op.f("ix_engagement_credit_at"), "engagement_credit", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_engagement_credit_at"), table_name="engagement_credit")
    op.drop_index(op.f("ix_engagement_sent_at"), table_name="engagement")
