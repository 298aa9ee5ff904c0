"""Tables for payments and side effects (issue 3).

The ``sim_gateway_*`` tables belong to the *simulated* payment processors and rate service: they model a separate
system that happens to keep its state in our database so that every API process and the outbox worker see one
ledger and one fault configuration. Only ``simulators.gateway`` writes them, in its own short transactions.
"""

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

sim_gateway_charges = Table(
    "sim_gateway_charges",
    metadata,
    Column("processor", String(40), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("token", String(200), nullable=True),
    Column("reference", String(64), nullable=False),
    Column("authorized", Boolean, nullable=False),
    Column("declined", Boolean, nullable=False, server_default="0"),
    Column("decline_reason", String(120), nullable=True),
    Column("captured", Boolean, nullable=False, server_default="0"),
    Column("voided", Boolean, nullable=False, server_default="0"),
    # How many capture requests arrived (retries are expected; only the first one moves money).
    Column("capture_requests", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("authorized_at", UtcDateTime, nullable=True),
    Column("captured_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("processor", "idempotency_key"),
)
Index("ix_sim_gateway_charges_order_id", sim_gateway_charges.c.order_id)

sim_gateway_faults = Table(
    "sim_gateway_faults",
    metadata,
    Column("name", String(40), primary_key=True),  # "primary", "secondary", "rates", ...
    Column("config", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Runtime routing configuration shared by every server process (e.g. the processor order).
payments_runtime = Table(
    "payments_runtime",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Periodic snapshot of each process's breakers and call counters, so `shopfloor payments status` can report
# what the server processes see (breakers live in memory, one set per process).
payment_processor_health = Table(
    "payment_processor_health",
    metadata,
    Column("instance", String(80), nullable=False),  # host:pid:router-id
    Column("processor", String(40), nullable=False),
    Column("breaker_state", String(16), nullable=False),
    Column("window_calls", Integer, nullable=False),
    Column("window_failures", Integer, nullable=False),
    Column("window_failure_pct", Float, nullable=False),
    Column("counters", JSON, nullable=False),  # cumulative outcome counts since the process started
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("instance", "processor"),
)

# Confirmation mails already handed to the SMTP server (dedupe by the stable Message-ID of the order).
sent_mail = Table(
    "sent_mail",
    metadata,
    Column("message_id", String(255), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
)
