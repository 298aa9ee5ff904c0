"""Shopify cancellations that arrived before their order, kept until the order arrives

Revision ID: 0012_shopify_pending
Revises: 0011_fulfillment_analytics
"""
from alembic import op
import sqlalchemy as sa
import shopfloor.store.tables

revision = "0012_shopify_pending"
down_revision = "0011_fulfillment_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shopify_pending_cancellations",
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("received_at", shopfloor.store.tables.UtcDateTimeType(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop", "external_id", name=op.f("pk_shopify_pending_cancellations")),
    )


def downgrade() -> None:
    op.drop_table("shopify_pending_cancellations")
