"""the feed's outages (the ingest down, Temporal unreachable, a source out) and the
ingest processes' heartbeats, which journeys ask before a flatline

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_outage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cause", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_feed_outage_started_at"), "feed_outage", ["started_at"])
    op.create_table(
        "ingest_heartbeat",
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process_id"),
    )
    op.create_index(op.f("ix_ingest_heartbeat_seen_at"), "ingest_heartbeat", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ingest_heartbeat_seen_at"), table_name="ingest_heartbeat")
    op.drop_table("ingest_heartbeat")
    op.drop_index(op.f("ix_feed_outage_started_at"), table_name="feed_outage")
    op.drop_table("feed_outage")
