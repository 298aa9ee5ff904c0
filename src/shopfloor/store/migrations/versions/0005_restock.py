"""restock: purchase orders

Revision ID: 0005_restock
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa
import shopfloor.store.tables


revision = "0005_restock"
down_revision = "0004_promise"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purchase_orders",
        sa.Column("po_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("expected_at", shopfloor.store.tables.UtcDateTimeType(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("supplier", sa.String(length=120), nullable=True),
        sa.Column("created_at", shopfloor.store.tables.UtcDateTimeType(timezone=True), nullable=False),
        sa.Column("updated_at", shopfloor.store.tables.UtcDateTimeType(timezone=True), nullable=False),
        sa.CheckConstraint("qty > 0", name=op.f("ck_purchase_orders_qty_positive")),
        sa.CheckConstraint(
            "status IN ('open', 'received', 'cancelled')", name=op.f("ck_purchase_orders_status_known")
        ),
        sa.ForeignKeyConstraint(["sku"], ["skus.sku"], name=op.f("fk_purchase_orders_sku_skus")),
        sa.ForeignKeyConstraint(
            ["warehouse"], ["warehouses.id"], name=op.f("fk_purchase_orders_warehouse_warehouses")
        ),
        sa.PrimaryKeyConstraint("po_id", name=op.f("pk_purchase_orders")),
    )
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_purchase_orders_status_sku", ["status", "sku", "warehouse"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_orders_status_sku")
    op.drop_table("purchase_orders")
