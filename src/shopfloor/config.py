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
    # --- promise ---------------------------------------------------------------------------------
    promise_confidence: float = Field(default=0.9, gt=0.5, lt=1.0, description="Confidence of deliver_by.")
    promise_limited_threshold: int = Field(default=5, ge=1, description="Fewer units left than this: limited.")
    promise_stale_feed_after_h: float = Field(default=24.0, gt=0, description="Warehouse feed age that degrades.")
    promise_stale_widen_days: int = Field(default=2, ge=0)
    promise_backlog_ratio_trigger: float = Field(default=1.5, gt=0)
    promise_pack_target_h: float = Field(default=48.0, gt=0)
    promise_missed_pack_trigger: float = Field(default=0.25, ge=0, le=1)
    promise_cutoff_hour: float = Field(default=14.0, ge=0, le=24, description="UTC hour after which orders ship "
                                       "the next working day.")
    promise_min_lane_weight: float = Field(default=8.0, gt=0)
    promise_half_life_days: float = Field(default=21.0, gt=0, description="Recency weighting of the statistics.")
    promise_region_map: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="country -> postal prefix -> destination region.")
    promise_stats_refresh_s: float = Field(default=2.0, ge=0)
    promise_cache_max_age_s: int = Field(default=30, ge=0)
    promise_cache_swr_s: int = Field(default=120, ge=0)
    promise_max_batch: int = Field(default=200, ge=1)
    promise_weekend_weight: float = Field(default=0.2, gt=0, le=1, description="Weight of Saturday/Sunday hours "
                                          "in fulfillment durations (1: calendar time; parcels rarely move then).")
    fulfillment_max_batch: int = Field(default=1000, ge=1)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
