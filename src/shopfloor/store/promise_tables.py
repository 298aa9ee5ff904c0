"""Tables of the promise area: fulfillment events (idempotency by event_id), per-order journeys and the keyed
statistics the promise engine reads."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from .tables import UtcDateTime, metadata

fulfillment_events = Table(
    "fulfillment_events",
    metadata,
    Column("event_id", String(120), primary_key=True),
    Column("order_id", String(120), nullable=False),
    Column("type", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("carrier", String(64), nullable=True),
    Column("country", String(2), nullable=True),
    Column("postal_code", String(16), nullable=True),
    Column("region", String(64), nullable=True),
    Column("placed_at", UtcDateTime, nullable=True),
    Column("origin_region", String(64), nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    # Returns (type ``returned``): what came back, how many, why, and whether it goes back on hand.
    Column("sku", String(64), nullable=True),
    Column("qty", Integer, nullable=True),
    Column("reason", String(32), nullable=True),
    Column("restock", Boolean, nullable=True),
)
Index("ix_fulfillment_events_order", fulfillment_events.c.order_id)
# The analytics read one window of one event type at a time.
Index("ix_fulfillment_events_type_at", fulfillment_events.c.type, fulfillment_events.c.at)

# One row per order: its merged journey (JSON of shopfloor.fulfillment.OrderTrack) and, while a recorded promise
# is unresolved, its due time, so overdue promises can be counted as misses without scanning every order.
fulfillment_orders = Table(
    "fulfillment_orders",
    metadata,
    Column("order_id", String(120), primary_key=True),
    Column("track", Text, nullable=False),
    Column("promise_due_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_fulfillment_orders_due", fulfillment_orders.c.promise_due_at)

# Keyed statistics (JSON of the state objects in shopfloor.fulfillment.stats). ``seq`` grows with every write, so
# readers refresh only what changed since their last load.
fulfillment_stats = Table(
    "fulfillment_stats",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("state", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_fulfillment_stats_seq", fulfillment_stats.c.seq)

promise_meta = Table(
    "promise_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("note", String(200), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
)
