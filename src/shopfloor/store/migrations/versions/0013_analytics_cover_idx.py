"""fulfillment analytics: covering indexes for the order-line window (orders by creation time with status, split
and id; order lines by order with warehouse, sku and qty), so the report reads both from indexes alone

Revision ID: 0013_analytics_cover_idx
Revises: 0012_shopify_pending
"""
from alembic import op

revision = "0013_analytics_cover_idx"
down_revision = "0012_shopify_pending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Replaces ix_orders_created_at (its leading column), so orders keep the same number of indexes.
    op.create_index("ix_orders_created_cover", "orders", ["created_at", "status", "split", "id"])
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.create_index("ix_order_lines_cover", "order_lines", ["order_id", "warehouse", "sku", "qty"])


def downgrade() -> None:
    op.drop_index("ix_order_lines_cover", table_name="order_lines")
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    op.drop_index("ix_orders_created_cover", table_name="orders")
