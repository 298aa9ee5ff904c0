"""SQLAlchemy Core tables. One MetaData for the whole system; Alembic migrations mirror it.

Each area may define its tables in its own module under ``store/`` using this ``metadata`` object.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

class UtcDateTimeType(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text, so we normalise both ways)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime passed to the store; use timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


UtcDateTime = UtcDateTimeType()

skus = Table(
    "skus",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("category", String(120), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("price >= 0", name="price_non_negative"),
)
# Category listings page by sku (migration 0011 also adds the full-text index: FTS5 on SQLite, GIN on PostgreSQL).
Index("ix_skus_category_sku", skus.c.category, skus.c.sku)

warehouses = Table(
    "warehouses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("region", String(120), nullable=False),
    Column("country", String(2), nullable=False),
    Column("postal_prefixes", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

stock = Table(
    "stock",
    metadata,
    Column("sku", String(64), ForeignKey("skus.sku"), nullable=False),
    Column("warehouse", String(64), ForeignKey("warehouses.id"), nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("sku", "warehouse"),
    CheckConstraint("on_hand >= 0", name="on_hand_non_negative"),
    CheckConstraint("reserved >= 0", name="reserved_non_negative"),
    CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("api_key_id", String(40), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("ship_to", JSON, nullable=False),
    Column("payment", JSON, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("shipping", JSON, nullable=True),
    Column("promise", JSON, nullable=True),
    Column("split", Integer, nullable=False, server_default="0"),
    Column("reservation_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_orders_status_expiry", orders.c.status, orders.c.reservation_expires_at)
# Covering for the fulfillment analytics' window of orders (creation time, then what the report reads of each).
Index("ix_orders_created_cover", orders.c.created_at, orders.c.status, orders.c.split, orders.c.id)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    PrimaryKeyConstraint("order_id", "line_no"),
    CheckConstraint("qty > 0", name="qty_positive"),
)
Index("ix_order_lines_sku", order_lines.c.sku)
# Covering for the fulfillment analytics: an order's lines with what the report reads of them.
Index("ix_order_lines_cover", order_lines.c.order_id, order_lines.c.warehouse, order_lines.c.sku,
      order_lines.c.qty)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("qty", Integer, nullable=False),
    # active -> released (cancelled, declined, expired) | consumed (stock left the building)
    Column("state", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("order_id", "sku", "warehouse"),
    CheckConstraint("qty > 0", name="qty_positive"),
)
Index("ix_reservations_state_expiry", reservations.c.state, reservations.c.expires_at)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(80), nullable=False),  # api key id + route
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("scope", "key"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    # pending -> delivered | dead
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("available_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
)
Index("ix_outbox_status_available", outbox.c.status, outbox.c.available_at)

processed_events = Table(
    "processed_events",
    metadata,
    Column("handler", String(80), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("processed_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("handler", "event_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Dashboard sessions ended by logout before their expiry (the cookie itself is stateless and signed). Rows are
# pruned once the session would have expired anyway.
dashboard_sessions_ended = Table(
    "dashboard_sessions_ended",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
)

warehouse_tasks = Table(
    "warehouse_tasks",
    metadata,
    Column("order_id", String(40), ForeignKey("orders.id"), primary_key=True),
    Column("warehouse", String(64), primary_key=True),
    Column("lines", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # open -> sent (webhook acknowledged)
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
)
