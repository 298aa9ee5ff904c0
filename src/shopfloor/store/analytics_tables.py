"""Tables behind the fulfillment analytics: stock receipts (for first-in-first-out inventory age), lines refused
for stock at checkout (backorder frequency), restocking returns waiting out their inspection, and listing flags
and promotion proposals raised by control-tower rules."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, Text

from .tables import UtcDateTime, metadata

# One row per order: its journey's timestamps and durations (hours), rebuilt from its fulfillment events whenever
# one of them arrives (``shopfloor.store.analytics.refresh_journeys``). The analytics read a window of it through
# the index on the end of each leg, instead of regrouping every event of every order.
fulfillment_journeys = Table(
    "fulfillment_journeys",
    metadata,
    Column("order_id", String(120), primary_key=True),
    Column("warehouse", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("start_at", UtcDateTime, nullable=True),
    Column("packed_at", UtcDateTime, nullable=True),
    Column("handed_at", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("pick_end_at", UtcDateTime, nullable=True),  # packed, else handed to the carrier
    Column("pick_pack_h", Float, nullable=True),
    Column("handoff_h", Float, nullable=True),
    Column("transit_h", Float, nullable=True),
)
# Covering: a window of one leg is read from its index alone.
Index("ix_fulfillment_journeys_pick_end", fulfillment_journeys.c.pick_end_at, fulfillment_journeys.c.warehouse,
      fulfillment_journeys.c.pick_pack_h)
Index("ix_fulfillment_journeys_handed", fulfillment_journeys.c.handed_at, fulfillment_journeys.c.warehouse,
      fulfillment_journeys.c.handoff_h)
Index("ix_fulfillment_journeys_delivered", fulfillment_journeys.c.delivered_at, fulfillment_journeys.c.warehouse,
      fulfillment_journeys.c.zone, fulfillment_journeys.c.transit_h)

# One row per arrival of units on hand: a count that raised the level, a purchase order received, a restocked
# return. ``cum_qty`` is the units received by the stock row up to and including this arrival, so under FIFO the
# units on hand are held by the arrivals whose ``cum_qty`` passes (all received - on hand): an index seek.
stock_receipts = Table(
    "stock_receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("cum_qty", BigInteger, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("source", String(16), nullable=False),  # count | purchase_order | return
)
Index("ix_stock_receipts_fifo", stock_receipts.c.sku, stock_receipts.c.warehouse, stock_receipts.c.cum_qty,
      stock_receipts.c.qty, stock_receipts.c.received_at)

# One row per order line that checkout refused for lack of stock (a 409 out_of_stock). ``warehouse`` is the one
# that serves the destination: the warehouse that would have shipped the line.
stock_refusals = Table(
    "stock_refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=True),
    Column("requested", Integer, nullable=False),
    Column("available", Integer, nullable=False),
)
Index("ix_stock_refusals_at", stock_refusals.c.at)

# A restocking return goes back on hand once inspected: ``available_at`` = returned at + the inspection delay.
return_restocks = Table(
    "return_restocks",
    metadata,
    Column("event_id", String(120), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("applied_at", UtcDateTime, nullable=True),
)
Index("ix_return_restocks_due", return_restocks.c.applied_at, return_restocks.c.available_at)

# Listing work raised by rules: ``flag_listing`` (copy, pictures or size guide to review, with the reasons) and
# ``propose_promotion`` (old stock worth promoting). One live row per (sku, kind).
listing_flags = Table(
    "listing_flags",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("reasons", JSON, nullable=False),
    Column("note", Text, nullable=False),
    Column("rule", String(120), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=False),
)
