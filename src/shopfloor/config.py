"""One Settings class for the whole system. It is built once (by the CLI or the app factory) and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable, read from ``SHOPFLOOR_*`` environment variables or passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="SHOPFLOOR_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite:///shopfloor.db",
        description="SQLAlchemy URL. Default: a SQLite file in the current directory.",
    )
    # --- buy path -------------------------------------------------------------------------------
    reservation_ttl_s: int = Field(default=900, ge=1, description="How long an unpaid reservation holds stock.")
    sweep_interval_s: float = Field(default=5.0, gt=0)
    max_lines_per_order: int = Field(default=50, ge=1)
    max_qty_per_line: int = Field(default=10_000, ge=1)
    idempotency_key_max_len: int = Field(default=200, ge=8)
    # Group commit: concurrent checkouts are applied in one transaction (a savepoint each) by one writer.
    batch_max_size: int = Field(default=64, ge=1)
    batch_max_wait_ms: float = Field(default=1.0, ge=0)
    # --- outbox worker --------------------------------------------------------------------------
    outbox_batch_size: int = Field(default=50, ge=1)
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_backoff_base_s: float = Field(default=0.5, gt=0)
    outbox_backoff_max_s: float = Field(default=60.0, gt=0)
    # --- data directories -----------------------------------------------------------------------
    data_dir: Path = Field(default=Path("var"), description="Where maildir, reports and plans are written.")
    log_level: str = Field(default="info")
    # --- restock ---
    restock_policy_file: Path | None = Field(
        default=None,
        description="TOML/JSON restock policy: [defaults], [suppliers.<name>], [skus.<sku>] with lead_time_days, "
        "review_days, service_level, moq, pack_size, supplier. None: built-in defaults (7, 1, 0.95, 1, 1).",
    )
    restock_history_days: int = Field(default=182, ge=14, description="Days of order history the demand model fits on.")
    restock_outlook_days: int = Field(default=56, ge=1, description="Days ahead for projected stockout dates.")
    restock_risk_threshold: float = Field(
        default=0.5, gt=0, le=1, description="Sell-out risk when P(stockout before replenishment) >= this."
    )
    restock_max_alternatives: int = Field(default=3, ge=0, description="In-stock alternatives listed per risk.")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
