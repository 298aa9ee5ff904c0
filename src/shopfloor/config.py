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
    # --- capacity -------------------------------------------------------------------------------
    # Per-replica capacity: requests/s one API replica serves within the p99 SLO. It must come from the checkout
    # benchmark's measured RPS at the p99 SLO; 200 is a placeholder until the integrator sets it from that run.
    capacity_per_replica_rps: float = Field(default=200.0, gt=0)
    capacity_lag_minutes: int = Field(default=10, ge=0, description="Pod request -> ready (pull, start, probe).")
    capacity_headroom: float = Field(default=1.0, gt=0, description="Multiplier on the upper-quantile forecast.")
    capacity_forecast_quantile: float = Field(default=0.95, ge=0.5, lt=1)
    capacity_target_utilization: float = Field(default=0.7, gt=0, le=1, description="Reactive (HPA) target.")
    capacity_slot_minutes: int = Field(default=15, ge=1)
    capacity_horizon_minutes: int = Field(default=180, ge=1)
    capacity_scale_in_slots: int = Field(default=1, ge=0)
    capacity_min_replicas: int = Field(default=2, ge=1)
    capacity_max_replicas: int = Field(default=50, ge=1)
    capacity_history_days: int = Field(default=8, ge=1, description="Request rollups read for the plan.")
    capacity_deployment: str = Field(default="shopfloor-api")
    capacity_namespace: str = Field(default="shopfloor")
    capacity_prometheus_url: str = Field(default="http://prometheus-operated.monitoring.svc:9090")
    capacity_rps_query: str = Field(default='sum(rate(http_requests_total{service="shopfloor-api"}[2m]))')
    capacity_cron_timezone: str = Field(default="Etc/UTC")
    capacity_warm_top_n: int = Field(default=50, ge=1)
    # Product URL to warm: the availability read a product page makes; point it at the storefront page if cached.
    capacity_warm_product_url: str = Field(default="/v1/stock/{sku}")
    capacity_warm_promise_url: str = Field(default="/v1/promise?sku={sku}&country={country}")
    capacity_warm_default_country: str = Field(default="US", min_length=2, max_length=2)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
