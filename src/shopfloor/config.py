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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
    # --- tower ----------------------------------------------------------------------------------
    tower_rules_file: Path = Field(default=Path("rules.yaml"), description="Rules file for `shopfloor rules run`.")
    tower_rules_interval_s: float = Field(default=60.0, gt=0, description="How often the worker evaluates rules.")
    tower_http_timeout_s: float = Field(default=5.0, gt=0, description="Timeout for webhooks and cache warming.")
    tower_smtp_host: str = Field(default="127.0.0.1", description="SMTP server for mail alerts.")
    tower_smtp_port: int = Field(default=25, ge=1, le=65535)
    tower_mail_from: str = Field(default="shopfloor@localhost")
    tower_beacon_max_batch: int = Field(default=1000, ge=1, description="Most events in one beacon POST.")
    tower_beacon_flush_s: float = Field(
        default=1.0, ge=0, description="Beacon rollups are group-committed this often (0: write through)."
    )
    tower_signal_window_s: int = Field(default=900, ge=60, description="Window for rate/latency signals.")
