"""payments: simulated gateway ledger and faults, routing config, processor health, sent mail

Revision ID: 0003_payments
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa
import shopfloor.store.tables


revision = "0003_payments"
down_revision = "0002_warehouse_tasks"
branch_labels = None
depends_on = None

UTC = shopfloor.store.tables.UtcDateTimeType(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sim_gateway_charges",
        sa.Column("processor", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("token", sa.String(length=200), nullable=True),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("authorized", sa.Boolean(), nullable=False),
        sa.Column("declined", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("decline_reason", sa.String(length=120), nullable=True),
        sa.Column("captured", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("voided", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("capture_requests", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("authorized_at", UTC, nullable=True),
        sa.Column("captured_at", UTC, nullable=True),
        sa.Column("voided_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("processor", "idempotency_key", name=op.f("pk_sim_gateway_charges")),
    )
    with op.batch_alter_table("sim_gateway_charges", schema=None) as batch_op:
        batch_op.create_index("ix_sim_gateway_charges_order_id", ["order_id"], unique=False)
    op.create_table(
        "sim_gateway_faults",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sim_gateway_faults")),
    )
    op.create_table(
        "payments_runtime",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_payments_runtime")),
    )
    op.create_table(
        "payment_processor_health",
        sa.Column("instance", sa.String(length=80), nullable=False),
        sa.Column("processor", sa.String(length=40), nullable=False),
        sa.Column("breaker_state", sa.String(length=16), nullable=False),
        sa.Column("window_calls", sa.Integer(), nullable=False),
        sa.Column("window_failures", sa.Integer(), nullable=False),
        sa.Column("window_failure_pct", sa.Float(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("instance", "processor", name=op.f("pk_payment_processor_health")),
    )
    op.create_table(
        "sent_mail",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("sent_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_sent_mail")),
    )


def downgrade() -> None:
    op.drop_table("sent_mail")
    op.drop_table("payment_processor_health")
    op.drop_table("payments_runtime")
    op.drop_table("sim_gateway_faults")
    with op.batch_alter_table("sim_gateway_charges", schema=None) as batch_op:
        batch_op.drop_index("ix_sim_gateway_charges_order_id")
    op.drop_table("sim_gateway_charges")
