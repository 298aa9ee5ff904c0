"""fulfillment analytics: returns on fulfillment events, order journeys, stock receipts, stock refusals, return restocks,
listing flags

Revision ID: 0011_fulfillment_analytics
Revises: 0010_storefront_search
"""
from alembic import op
import sqlalchemy as sa

import shopfloor.store.tables

revision = "0011_fulfillment_analytics"
down_revision = "0010_storefront_search"
branch_labels = None
depends_on = None

UTC = shopfloor.store.tables.UtcDateTimeType(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("fulfillment_events") as batch:
        batch.add_column(sa.Column("sku", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("qty", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("restock", sa.Boolean(), nullable=True))
    op.create_index("ix_fulfillment_events_type_at", "fulfillment_events", ["type", "at"], unique=False)
    op.create_table(
        "fulfillment_journeys",
        sa.Column("order_id", sa.String(length=120), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("start_at", UTC, nullable=True),
        sa.Column("packed_at", UTC, nullable=True),
        sa.Column("handed_at", UTC, nullable=True),
        sa.Column("delivered_at", UTC, nullable=True),
        sa.Column("pick_end_at", UTC, nullable=True),
        sa.Column("pick_pack_h", sa.Float(), nullable=True),
        sa.Column("handoff_h", sa.Float(), nullable=True),
        sa.Column("transit_h", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_fulfillment_journeys")),
    )
    op.create_index("ix_fulfillment_journeys_pick_end", "fulfillment_journeys",
                    ["pick_end_at", "warehouse", "pick_pack_h"])
    op.create_index("ix_fulfillment_journeys_handed", "fulfillment_journeys", ["handed_at", "warehouse", "handoff_h"])
    op.create_index("ix_fulfillment_journeys_delivered", "fulfillment_journeys",
                    ["delivered_at", "warehouse", "zone", "transit_h"])
    # Journeys of the events already stored.
    from shopfloor.store.analytics import refresh_journeys

    refresh_journeys(op.get_bind())
    op.create_table(
        "stock_receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("cum_qty", sa.BigInteger(), nullable=False),
        sa.Column("received_at", UTC, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_receipts")),
    )
    op.create_index("ix_stock_receipts_fifo", "stock_receipts", ["sku", "warehouse", "cum_qty", "qty", "received_at"])
    op.create_table(
        "stock_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=True),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_refusals")),
    )
    op.create_index("ix_stock_refusals_at", "stock_refusals", ["at"])
    op.create_table(
        "return_restocks",
        sa.Column("event_id", sa.String(length=120), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("available_at", UTC, nullable=False),
        sa.Column("applied_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_return_restocks")),
    )
    op.create_index("ix_return_restocks_due", "return_restocks", ["applied_at", "available_at"])
    op.create_table(
        "listing_flags",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=120), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("until", UTC, nullable=False),
        sa.PrimaryKeyConstraint("sku", "kind", name=op.f("pk_listing_flags")),
    )


def downgrade() -> None:
    op.drop_table("listing_flags")
    op.drop_index("ix_return_restocks_due", table_name="return_restocks")
    op.drop_table("return_restocks")
    op.drop_index("ix_stock_refusals_at", table_name="stock_refusals")
    op.drop_table("stock_refusals")
    op.drop_index("ix_stock_receipts_fifo", table_name="stock_receipts")
    op.drop_table("stock_receipts")
    for name in ("ix_fulfillment_journeys_delivered", "ix_fulfillment_journeys_handed",
                 "ix_fulfillment_journeys_pick_end"):
        op.drop_index(name, table_name="fulfillment_journeys")
    op.drop_table("fulfillment_journeys")
    op.drop_index("ix_fulfillment_events_type_at", table_name="fulfillment_events")
    with op.batch_alter_table("fulfillment_events") as batch:
        batch.drop_column("restock")
        batch.drop_column("reason")
        batch.drop_column("qty")
        batch.drop_column("sku")
