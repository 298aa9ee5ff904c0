"""promise: fulfillment events, order journeys and keyed statistics

Revision ID: 0004_promise
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa
import shopfloor.store.tables

revision = "0004_promise"
down_revision = "0003_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = shopfloor.store.tables.UtcDateTimeType(timezone=True)
    op.create_table(
        "fulfillment_events",
        sa.Column("event_id", sa.String(length=120), nullable=False),
        sa.Column("order_id", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("postal_code", sa.String(length=16), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("placed_at", utc, nullable=True),
        sa.Column("origin_region", sa.String(length=64), nullable=True),
        sa.Column("received_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_fulfillment_events")),
    )
    op.create_index("ix_fulfillment_events_order", "fulfillment_events", ["order_id"], unique=False)
    op.create_table(
        "fulfillment_orders",
        sa.Column("order_id", sa.String(length=120), nullable=False),
        sa.Column("track", sa.Text(), nullable=False),
        sa.Column("promise_due_at", utc, nullable=True),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_fulfillment_orders")),
    )
    op.create_index("ix_fulfillment_orders_due", "fulfillment_orders", ["promise_due_at"], unique=False)
    op.create_table(
        "fulfillment_stats",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fulfillment_stats")),
    )
    op.create_index("ix_fulfillment_stats_seq", "fulfillment_stats", ["seq"], unique=False)
    op.create_table(
        "promise_meta",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_promise_meta")),
    )


def downgrade() -> None:
    op.drop_table("promise_meta")
    op.drop_index("ix_fulfillment_stats_seq", table_name="fulfillment_stats")
    op.drop_table("fulfillment_stats")
    op.drop_index("ix_fulfillment_orders_due", table_name="fulfillment_orders")
    op.drop_table("fulfillment_orders")
    op.drop_index("ix_fulfillment_events_order", table_name="fulfillment_events")
    op.drop_table("fulfillment_events")
