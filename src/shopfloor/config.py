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
