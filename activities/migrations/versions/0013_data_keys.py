"""data keys: each customer's key for their journey's payloads, wrapped by a master key

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_key",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_in_run", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("customer_id", "generation"),
    )
    op.create_index(op.f("ix_data_key_erased_in_run"), "data_key", ["erased_in_run"])


def downgrade() -> None:
    op.drop_index(op.f("ix_data_key_erased_in_run"), table_name="data_key")
    op.drop_table("data_key")
