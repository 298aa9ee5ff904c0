"""Integration tables: outbound webhook subscriptions and their deliveries, Shopify shops and raw inbound
deliveries, and where each imported order came from."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .tables import UtcDateTime, metadata

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),
    # Standard Webhooks secrets (whsec_<base64>); the first signs, all are sent while a rotation runs.
    Column("secrets", JSON, nullable=False),
    Column("description", String(300), nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("disabled_reason", String(300), nullable=True),
    Column("failing_since", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    # The webhook-id header: the same on every retry and redelivery, so receivers deduplicate on it.
    Column("message_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending -> succeeded | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_endpoint_message"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("delivery_id", "attempt"),
)

shopify_shops = Table(
    "shopify_shops",
    metadata,
    Column("shop", String(255), primary_key=True),
    Column("secrets", JSON, nullable=False),
    Column("locations", JSON, nullable=False),  # {"<location_id>": "<warehouse>"}
    Column("stock_policy", String(16), nullable=False),  # consume | reserve | ignore
    Column("updated_at", UtcDateTime, nullable=False),
)

shopify_inventory_items = Table(
    "shopify_inventory_items",
    metadata,
    Column("shop", String(255), nullable=False),
    Column("inventory_item_id", String(40), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("shop", "inventory_item_id"),
)

# The newest inventory level applied per (item, location): an older update arriving late is ignored.
shopify_inventory_levels = Table(
    "shopify_inventory_levels",
    metadata,
    Column("shop", String(255), nullable=False),
    Column("inventory_item_id", String(40), nullable=False),
    Column("location_id", String(40), nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("level_updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("shop", "inventory_item_id", "location_id"),
)

shopify_deliveries = Table(
    "shopify_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("shop", String(255), nullable=False),
    Column("webhook_id", String(100), nullable=False),
    Column("event_id", String(100), nullable=True),
    Column("topic", String(64), nullable=False),
    Column("triggered_at", UtcDateTime, nullable=True),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # received -> processed | ignored | waiting
    Column("outcome", Text, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("shop", "webhook_id", name="uq_shopify_deliveries_shop_webhook"),
    UniqueConstraint("shop", "event_id", name="uq_shopify_deliveries_shop_event"),
)

# A Shopify cancellation that arrived before its order: kept until ``orders/create`` for that order is processed,
# then applied (the order is imported and cancelled in the same transaction).
shopify_pending_cancellations = Table(
    "shopify_pending_cancellations",
    metadata,
    Column("shop", String(255), nullable=False),
    Column("external_id", String(100), nullable=False),
    Column("delivery_id", Integer, nullable=False),
    Column("reason", String(300), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("shop", "external_id"),
)

# Where an order from another channel came from: one row per order, unique per (channel, external id), which
# makes imports and webhook redeliveries idempotent.
order_sources = Table(
    "order_sources",
    metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), primary_key=True),
    Column("channel", String(300), nullable=False),
    Column("external_id", String(100), nullable=False),
    Column("stock_policy", String(16), nullable=False),
    Column("details", JSON, nullable=True),
    Column("imported_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "external_id", name="uq_order_sources_channel_external"),
)
Index("ix_order_sources_external_id", order_sources.c.external_id)
