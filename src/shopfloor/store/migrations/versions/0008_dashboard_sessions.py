"""dashboard sessions ended by logout

Revision ID: 0008_dashboard_sessions
Revises: 0007_tower
"""
from alembic import op
import sqlalchemy as sa

import shopfloor.store.tables

revision = "0008_dashboard_sessions"
down_revision = "0007_tower"
branch_labels = None
depends_on = None

UTC = shopfloor.store.tables.UtcDateTimeType(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions_ended",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_dashboard_sessions_ended")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sessions_ended")
