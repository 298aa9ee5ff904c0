"""control tower: a latency histogram beside the funnel rollups (per minute, stage and bucket), so the dashboard
and the rules read percentiles, not only the mean

Revision ID: 0014_funnel_latency
Revises: 0013_analytics_cover_idx
"""
import sqlalchemy as sa
from alembic import op

import shopfloor.store.tables

revision = "0014_funnel_latency"
down_revision = "0013_analytics_cover_idx"
branch_labels = None
depends_on = None

UTC = shopfloor.store.tables.UtcDateTimeType(timezone=True)


def upgrade() -> None:
    op.create_table(
        "funnel_latency",
        sa.Column("minute", UTC, nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("le_ms", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("minute", "stage", "le_ms", name=op.f("pk_funnel_latency")),
    )


def downgrade() -> None:
    op.drop_table("funnel_latency")
