"""Tables for capacity planning: per-minute request rollups written by the HTTP middleware."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, PrimaryKeyConstraint, String, Table

from .tables import UtcDateTime, metadata

request_minutes = Table(
    "request_minutes",
    metadata,
    Column("minute", UtcDateTime, nullable=False),  # start of the UTC minute
    Column("route", String(200), nullable=False),  # route template, e.g. "/v1/orders/{order_id}"
    Column("count", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False, server_default="0"),
    Column("latency_ms_sum", Float, nullable=False, server_default="0"),
    PrimaryKeyConstraint("minute", "route"),
)
# The plan reads the total over all routes for a time range: the PK's leading column serves it.
Index("ix_request_minutes_route_minute", request_minutes.c.route, request_minutes.c.minute)
