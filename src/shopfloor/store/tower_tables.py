"""Control-tower tables: per-minute funnel rollups, alerts, the action log and the state actions leave behind."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from .tables import UtcDateTime, metadata

# One row per (minute, stage); beacons and server-side stages are upserted per batch.
funnel_minutes = Table(
    "funnel_minutes",
    metadata,
    Column("minute", UtcDateTime, nullable=False),
    Column("stage", String(40), nullable=False),
    Column("count", BigInteger, nullable=False, server_default="0"),
    Column("latency_ms_sum", Float, nullable=False, server_default="0"),
    Column("latency_count", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("minute", "stage"),
)

#: Latency histogram of the funnel rollups: per (minute, stage), how many latencies fell at or under ``le_ms``
#: and above the bucket below (bounds in ``tower.funnel.LATENCY_BOUNDS_MS``; ``le_ms`` = :data:`LE_INF_MS` is the
#: bucket slower than the last bound). Only buckets with a count are stored.
LE_INF_MS = 2_147_483_647
funnel_latency = Table(
    "funnel_latency",
    metadata,
    Column("minute", UtcDateTime, nullable=False),
    Column("stage", String(40), nullable=False),
    Column("le_ms", Integer, nullable=False),
    Column("count", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("minute", "stage", "le_ms"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("source", String(40), nullable=False),  # detector | rule:<name>
    Column("metric", String(120), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("observed", Float, nullable=True),
    Column("expected", Float, nullable=True),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Column("score", Float, nullable=True),
    Column("message", Text, nullable=False, server_default=""),
)
Index("ix_alerts_at", alerts.c.at)

# The action log: what ran, why (rule + condition), the values seen, state before and after.
tower_actions = Table(
    "tower_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("rule", String(120), nullable=False),
    Column("action_key", String(160), nullable=False),  # rule + action index + type: the cooldown key
    Column("action_type", String(40), nullable=False),
    Column("status", String(24), nullable=False),  # applied | dry_run | failed
    Column("dry_run", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("signal_values", JSON, nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("error", Text, nullable=True),
)
Index("ix_tower_actions_key_at", tower_actions.c.action_key, tower_actions.c.dry_run, tower_actions.c.at)
Index("ix_tower_actions_at", tower_actions.c.at)

promotion_suppressions = Table(
    "promotion_suppressions",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("alternatives", JSON, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_promotion_suppressions_until", promotion_suppressions.c.until)

promise_degradations = Table(
    "promise_degradations",
    metadata,
    Column("warehouse", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("extra_days", Integer, nullable=False, server_default="1"),
    Column("until", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
