"""tower: funnel rollups, alerts, action log, promotion suppressions, promise degradations

Revision ID: 0007_tower
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa

import shopfloor.store.tables

revision = "0007_tower"
down_revision = "0006_capacity"
branch_labels = None
depends_on = None

UTC = shopfloor.store.tables.UtcDateTimeType(timezone=True)


def upgrade() -> None:
    op.create_table(
        "funnel_minutes",
        sa.Column("minute", UTC, nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("latency_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("minute", "stage", name=op.f("pk_funnel_minutes")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("observed", sa.Float(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_at", "alerts", ["at"], unique=False)
    op.create_table(
        "tower_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("rule", sa.String(length=120), nullable=False),
        sa.Column("action_key", sa.String(length=160), nullable=False),
        sa.Column("action_type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("signal_values", sa.JSON(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tower_actions")),
    )
    op.create_index("ix_tower_actions_key_at", "tower_actions", ["action_key", "dry_run", "at"], unique=False)
    op.create_index("ix_tower_actions_at", "tower_actions", ["at"], unique=False)
    op.create_table(
        "promotion_suppressions",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("until", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_promotion_suppressions")),
    )
    op.create_index("ix_promotion_suppressions_until", "promotion_suppressions", ["until"], unique=False)
    op.create_table(
        "promise_degradations",
        sa.Column("warehouse", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("extra_days", sa.Integer(), server_default="1", nullable=False),
        sa.Column("until", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("warehouse", name=op.f("pk_promise_degradations")),
    )


def downgrade() -> None:
    op.drop_table("promise_degradations")
    op.drop_index("ix_promotion_suppressions_until", table_name="promotion_suppressions")
    op.drop_table("promotion_suppressions")
    op.drop_index("ix_tower_actions_at", table_name="tower_actions")
    op.drop_index("ix_tower_actions_key_at", table_name="tower_actions")
    op.drop_table("tower_actions")
    op.drop_index("ix_alerts_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("funnel_minutes")
