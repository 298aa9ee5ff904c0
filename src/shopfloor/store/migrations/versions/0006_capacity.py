"""capacity: per-minute request rollups

Revision ID: 0006_capacity
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa
import shopfloor.store.tables


revision = "0006_capacity"
down_revision = "0005_restock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_minutes",
        sa.Column("minute", shopfloor.store.tables.UtcDateTimeType(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("minute", "route", name=op.f("pk_request_minutes")),
    )
    with op.batch_alter_table("request_minutes", schema=None) as batch_op:
        batch_op.create_index("ix_request_minutes_route_minute", ["route", "minute"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_minutes", schema=None) as batch_op:
        batch_op.drop_index("ix_request_minutes_route_minute")
    op.drop_table("request_minutes")
