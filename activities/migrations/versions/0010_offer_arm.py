"""offer arms (Thompson sampling's counts) and learned engagements

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_arm",
        sa.Column("decision", sa.String(length=64), nullable=False),
        sa.Column("cohort", sa.String(length=16), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("recovered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("decision", "cohort", "offer_id"),
    )
    with op.batch_alter_table("engagement") as batch:
        batch.add_column(sa.Column("decision", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("arm_cohort", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engagement") as batch:
        batch.drop_column("arm_cohort")
        batch.drop_column("decision")
    op.drop_table("offer_arm")
