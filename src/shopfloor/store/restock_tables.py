"""Restock tables: purchase orders (stock on order from suppliers)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, Table

from .tables import UtcDateTime, metadata

PO_STATUSES = ("open", "received", "cancelled")

purchase_orders = Table(
    "purchase_orders",
    metadata,
    Column("po_id", String(64), primary_key=True),
    Column("sku", String(64), ForeignKey("skus.sku"), nullable=False),
    Column("warehouse", String(64), ForeignKey("warehouses.id"), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("expected_at", UtcDateTime, nullable=False),
    # open -> received | cancelled; only open orders count as "on order"
    Column("status", String(16), nullable=False),
    Column("supplier", String(120), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("qty > 0", name="qty_positive"),
    CheckConstraint("status IN ('open', 'received', 'cancelled')", name="status_known"),
)
Index("ix_purchase_orders_status_sku", purchase_orders.c.status, purchase_orders.c.sku, purchase_orders.c.warehouse)
