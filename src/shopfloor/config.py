"""One Settings class for the whole system. It is built once (by the CLI or the app factory) and passed in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


#: URL schemes (before any ``+driver``) of the databases shopfloor runs on.
SUPPORTED_DATABASES = ("sqlite", "postgresql", "postgres")


def redact_url(url: str) -> str:
    """``url`` (a database or Redis URL) as it may be shown to people or written to a log: the password masked
    (``***``) and the query string dropped (libpq takes ``?password=`` too). A URL SQLAlchemy cannot parse, or one
    whose password holds an unescaped ``@``, is shown as its scheme only (``postgres:...``)."""
    from sqlalchemy.engine import make_url

    scheme = url.split(":", 1)[0] if ":" in url else ""
    fallback = f"{scheme}:..." if scheme.replace("+", "").isalnum() else "..."
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - ArgumentError, or ValueError for a port that is not a number
        return fallback
    if "@" in (parsed.host or ""):  # u:p@ss@host: the host SQLAlchemy found holds the rest of the password
        return fallback
    return parsed.set(query={}).render_as_string(hide_password=True)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal, as written in a setting; nothing is resolved) is this machine:
    ``localhost`` or a loopback address such as 127.0.0.1 or ::1."""
    import ipaddress

    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def smtp_login_in_clear(host: str | None, starttls: bool, username: str | None) -> bool:
    """Whether SMTP would send ``username``'s password over an unencrypted connection: a login is configured, the
    server is not on this machine and STARTTLS is off. A local relay (127.0.0.1, ::1, localhost) is allowed."""
    return bool(host and username and not starttls and not is_loopback_host(host))


class GuardedProductSettings(BaseModel):
    """A product behind the flash-sale waiting room."""

    model_config = ConfigDict(extra="forbid")
    opens_at: datetime | None = Field(
        default=None, description="When the sale opens (ISO 8601 with a zone). Checkouts before it are queued and "
                                  "shuffled once at the opening; unset: open now, first come first served.")


class BucketLimit(BaseModel):
    """A token bucket: ``burst`` requests at once, refilled at ``rate_per_s``."""

    model_config = ConfigDict(extra="forbid")
    rate_per_s: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=10_000_000)


class Settings(BaseSettings):
    """Everything configurable, read from ``SHOPFLOOR_*`` environment variables or passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="SHOPFLOOR_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite:///shopfloor.db",
        description="SQLAlchemy URL. Default: a SQLite file in the current directory.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        backend = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
        if backend not in SUPPORTED_DATABASES:
            shown = (f"unsupported database {backend!r}" if backend.isalnum()
                     else f"not a database URL ({redact_url(url)})")
            raise ValueError(f"{shown}: shopfloor runs on SQLite "
                             "(sqlite:///path/to/shop.db) or PostgreSQL (postgresql://user@host/db)")
        return url
    # --- buy path -------------------------------------------------------------------------------
    reservation_ttl_s: int = Field(default=900, ge=1, description="How long an unpaid reservation holds stock.")
    sweep_interval_s: float = Field(default=5.0, gt=0)
    # Group commit: concurrent checkouts are applied in one transaction (a savepoint each) by one writer.
    batch_max_size: int = Field(default=64, ge=1)
    batch_max_wait_ms: float = Field(default=1.0, ge=0)
    checkout_stages_log: str | None = Field(
        default=None, description="Benchmarks only: a file the server appends the wall time of each checkout's "
                                  "stages to (see orders/stages.py, bench/checkout_waits.py). Unset: off.")
    database_pool_size: int = Field(
        default=24, ge=1, le=512,
        description="Connections a process keeps open. Checkout holds one per in-flight promise read and simulated "
                    "ledger write; with too few, PostgreSQL checkouts queue for a connection (8 kept + 16 opened "
                    "and closed on demand gave about half the checkout throughput at 64 concurrent requests).")
    database_max_overflow: int = Field(
        default=8, ge=0, le=1024,
        description="Extra connections opened (and closed again) under load. Keep (pool + overflow) x server "
                    "processes, plus the workers', below PostgreSQL's max_connections (100 by default).")
    sqlite_write_lock_poll_ms: float = Field(
        default=0.5, ge=0, le=100,
        description="SQLite: while another process (the worker) holds the database's write lock, the server's "
                    "writers ask for it again this often instead of through SQLite's busy handler, which sleeps up to "
                    "100 ms between tries (0 = SQLite's busy handler). Only shopfloor serve; other commands keep the "
                    "busy handler, so the server's checkouts come first.")
    sqlite_checkpoint_interval_s: float = Field(
        default=0.5, ge=0, le=60,
        description="SQLite: the server copies the WAL into the database file from a background thread this often "
                    "(0 = leave it to the committing writers, SQLite's default).")
    store_raw_writer: str = Field(
        default="sqlite,postgresql", pattern=r"^(|(sqlite|postgresql)(,(sqlite|postgresql))?)$",
        description="Databases (comma-separated: sqlite, postgresql; empty: none) on which the checkout writer's hot "
                    "statements run on the raw DBAPI cursor instead of SQLAlchemy's execution layer (same SQL, "
                    "same transactions).")
    server_switch_interval_ms: float = Field(
        default=0.0, ge=0, le=100,
        description="The server process's GIL switch interval in ms (Python's default is 5; 0 leaves it alone). A "
                    "thread of the buy path (the group-commit writer) waiting for the GIL while the event loop "
                    "is busy waits up to this long at each hand-over, and a batch hands over at every database "
                    "call.")
    server_gc_gen0_threshold: int = Field(
        default=10_000, ge=0, le=1_000_000,
        description="The server process's garbage-collector threshold for its youngest generation, in net "
                    "allocations between collections (Python's default is 700; 0 leaves Python's setting alone). "
                    "Each young collection walks every live object created since the last one, under checkout load "
                    "mostly the in-flight requests' objects: at 700 that cost about 75 us of CPU per checkout, at "
                    "10,000 under 10 us (objects freed by reference counting are never walked, so rarer "
                    "collections do not each walk proportionally more).")
    checkout_promise: bool = Field(default=True, description="Compute and store a delivery promise per order.")
    buy_path_threads: int = Field(default=64, ge=4, le=1024,
                                  description="Threads for blocking checkout calls (quotes, promises, processors).")
    # --- HTTP -------------------------------------------------------------------------------------
    http_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024,
        description="Largest request body accepted (bytes); larger ones get 413 payload_too_large, counted while "
                    "the body is read, so no more than this is ever buffered.")
    http_route_body_limits: dict[str, int] = Field(
        default_factory=lambda: {"/v1/fulfillment/events": 4 * 1024 * 1024, "/v1/events/storefront": 512 * 1024},
        description="Per-path body limits (bytes) for the routes that need more than http_max_body_bytes: the batch "
                    "ingestion endpoints (fulfillment_max_batch and tower_beacon_max_batch events).")
    checkout_max_in_flight: int = Field(
        default=1024, ge=0, le=1_000_000,
        description="Checkouts one server process works on at once; beyond it a checkout gets 429 with Retry-After "
                    "(shed load early rather than time out late). 0 = no limit.")
    http_proxy_headers: bool = Field(
        default=True, description="Trust X-Forwarded-Proto/For from http_forwarded_allow_ips (uvicorn's "
                                  "--proxy-headers), so that requests a TLS proxy forwards count as https.")
    http_backlog: int = Field(
        default=4096, ge=64, le=65_535, description="Listen backlog of `shopfloor serve` (connections the kernel "
        "queues until the server accepts them; capped by net.core.somaxconn). A flash crowd opens thousands of "
        "connections within a second: past the backlog the kernel drops them and clients retry after 1, 3, 7 s.")
    http_forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Comma-separated proxy addresses (or networks, or *) whose forwarded headers "
                                         "are trusted (uvicorn's --forwarded-allow-ips).")
    # --- shared state across server processes (waiting room, rate limits) -------------------------
    redis_url: str | None = Field(
        default=None, description="Redis holding the waiting room's queues and the rate-limit buckets, shared by "
                                  "every server process (e.g. redis://127.0.0.1:6379/0). Unset: both live in each "
                                  "process's memory, which is exact for a single server process only.")
    redis_key_prefix: str = Field(default="shopfloor:", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:._-]+$",
                                  description="Prefix of every Redis key shopfloor writes.")
    # --- flash-sale waiting room -------------------------------------------------------------------
    waitroom_products: dict[str, GuardedProductSettings] = Field(
        default_factory=dict,
        description="Products whose checkouts go through the waiting room, e.g. "
                    '{"HOT": {"opens_at": "2026-12-01T09:00:00Z"}}.')
    waitroom_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of queue tokens (>= 16 bytes). Unset: random per process, "
                                  "which is fine for one server process; several processes need the same one.")
    waitroom_token_ttl_s: int = Field(default=900, ge=10, le=86_400, description="How long a queue token is valid.")
    waitroom_units_factor: float = Field(
        default=2.0, gt=0, le=100,
        description="k: at most k x remaining units of a product may be admitted and checking out at once.")
    waitroom_max_in_flight: int = Field(
        default=0, ge=0, le=1_000_000,
        description="At most this many admitted shoppers of a guarded product checking out at once, whatever the "
        "units left (0: k x remaining units only). Paces a sale's opening so that its purchases do not all start "
        "at once in front of every other checkout; with several server processes the cap is shared (the queue "
        "store counts who is checking out).")
    waitroom_admit_ttl_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long an admitted shopper has to check out before the place "
                                                "goes to the next in line.")
    waitroom_serve_rate_per_s: float = Field(
        default=50.0, gt=0, description="Checkouts per second a guarded product's queue drains at (for eta_s).")
    waitroom_max_poll_s: int = Field(
        default=2, ge=1, le=60, description="Longest Retry-After given to a waiting shopper; bounds how late a "
                                            "waiting shopper hears that the product sold out.")
    waitroom_max_hold_s: float = Field(
        default=25.0, ge=0, le=60, description="Longest a GET /v1/queue/{token}?wait=S request is held.")
    waitroom_max_held: int = Field(
        default=10_000, ge=0, le=1_000_000, description="Most GET /v1/queue/{token}?wait=S requests one server "
        "process holds at once (each is an open connection); past it a status request is answered at once with "
        "Retry-After. 0: none is held.")
    waitroom_arrival_lane_per_turn: int = Field(
        default=8, ge=0, le=10_000, description="New arrivals at a guarded product's checkout (no Queue-Token) that "
        "one server process lets on per event-loop turn, whether the HTTP protocol answers them itself (sold out, "
        "queued) or a request task does; the rest wait in line, FIFO, behind everything else the loop has to do "
        "(admitted checkouts, other products' checkouts, queue status), so that a crowd's arrivals do not hold up "
        "the purchases under way. 0: no line; see docs/benchmarks/flash_sale.md for what it did in the game day.")
    waitroom_wake_per_turn: int = Field(
        default=64, ge=0, le=1_000_000, description="Held GET /v1/queue/{token}?wait=S requests one server process "
        "answers per event-loop turn when many are answered at once (the product sold out); the rest follow in the "
        "next turns, so that other requests' next steps do not wait for thousands of answers. 0: all in one turn.")
    waitroom_status_shortcut: bool = Field(
        default=True, description="shopfloor serve answers GET /v1/queue/{token} in its HTTP protocol, and holds a "
        "waiting shopper's ?wait= request there as a future instead of a request task, with the in-process queue "
        "(one server process; with Redis the usual way): the same answers, limits and metrics, a fraction of the "
        "CPU when thousands are held and answered at the sell-out. false: the usual way for every status request.")
    waitroom_sold_out_shortcut: bool = Field(
        default=True, description="shopfloor serve answers a new arrival's checkout of a guarded product that is "
        "already sold out in its HTTP protocol, before building a request for it (the same 409 sold_out; see "
        "shopfloor.api.crowd_front.SoldOutShortcut).")
    waitroom_queued_shortcut: bool = Field(
        default=True, description="shopfloor serve answers a checkout of a guarded product that the waiting room "
        "puts (or keeps) in line in its HTTP protocol, after the same rate limits: the same 429 queued or "
        "429 too_many_requests (see shopfloor.api.crowd_front.SoldOutShortcut). Only with the queue and the rate "
        "limits in this process (not with Redis).")
    waitroom_stock_cache_s: float = Field(
        default=0.2, ge=0, le=10, description="How often a process re-reads a guarded product's remaining units.")
    bot_window_s: float = Field(default=60.0, gt=0, le=3600, description="Window of the bot-pattern alerts.")
    bot_card_addresses: int = Field(
        default=20, ge=2, description="Alert when one payment card is used from this many client addresses.")
    bot_product_addresses: int = Field(
        default=50, ge=2, description="Alert when this many client addresses are refused on checkouts of one product "
                                      "(rate-limited or a forged queue token).")
    # --- rate limits (token buckets; shared through Redis when redis_url is set) --------------------
    ratelimit_checkout_per_key: BucketLimit | None = Field(
        default=None, description='Checkouts per API key, e.g. {"rate_per_s": 50, "burst": 100}. Unset: no limit.')
    ratelimit_checkout_per_address: BucketLimit | None = Field(
        default=None, description="Checkouts per client address (the forwarded one behind a trusted proxy).")
    ratelimit_checkout_per_product: BucketLimit | None = Field(
        default=None, description="Checkouts that reach the buy path per product, whatever the address: a farm of "
                                  "many addresses still shares one product's bucket.")
    ratelimit_reads_per_address: BucketLimit | None = Field(
        default=None, description="Open read requests (ratelimit_read_paths) per client address.")
    ratelimit_read_paths: list[str] = Field(
        default_factory=lambda: ["/v1/stock/", "/v1/promise", "/v1/queue/", "/v1/skus/"],
        description="Path prefixes of the open read endpoints that ratelimit_reads_per_address applies to.")
    # --- outbox worker --------------------------------------------------------------------------
    outbox_batch_size: int = Field(default=50, ge=1)
    outbox_concurrency: int = Field(
        default=8, ge=1, le=256,
        description="Threads per worker process delivering one batch's events (one order per thread at a time).")
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    outbox_lease_s: float = Field(
        default=30.0, gt=0, description="How long a claimed event is reserved for its worker; the worker renews it "
                                         "every third of this while the event's handlers run.")
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="`shopfloor worker` serves its Prometheus metrics (order confirmations, warehouse handoffs, "
                    "processor calls) on this port at /metrics; scrape it beside the API. 0 = off.")
    worker_metrics_host: str = Field(default="127.0.0.1", description="Interface for the worker's metrics port.")
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_backoff_base_s: float = Field(default=0.5, gt=0)
    outbox_backoff_max_s: float = Field(default=60.0, gt=0)
    # --- data directories -----------------------------------------------------------------------
    data_dir: Path = Field(default=Path("var"), description="Where maildir, reports and plans are written.")
    log_level: str = Field(default="info")
    # --- restock ---
    restock_policy_file: Path | None = Field(
        default=None,
        description="TOML, YAML or JSON restock policy: [defaults], [suppliers.<name>], [skus.<sku>] with "
        "lead_time_days, review_days, fill_rate (the fill-rate target; service_level is read as the target when "
        "fill_rate is absent), moq, pack_size, supplier, order_cap (capped base stock; 0 = off). None: built-in "
        "defaults (7, 1, 0.95, 1, 1, order_cap 1.25).",
    )
    restock_history_days: int = Field(default=182, ge=14, description="Days of order history the demand model fits on.")
    restock_outlook_days: int = Field(default=56, ge=1, description="Days ahead for projected stockout dates.")
    restock_risk_threshold: float = Field(
        default=0.5, gt=0, le=1, description="Sell-out risk when P(stockout before replenishment) >= this."
    )
    restock_max_alternatives: int = Field(default=3, ge=0, description="In-stock alternatives listed per risk.")
    restock_refit_days: int = Field(
        default=7, ge=1, description="A restock plan reuses the global forecast model fitted on an earlier plan's "
        "history while its own history ends fewer than this many days later and the days both share are unchanged "
        "(1: refit whenever the history changes).",
    )
    restock_cache_models: int = Field(
        default=8, ge=0, description="Fitted restock models kept in memory between plans (0: no cache; every plan "
        "fits and replays its history).",
    )
    restock_cache_mb: int = Field(
        default=256, ge=0, description="Memory (MB) for restock plan levels kept between plans of the same history.",
    )
    restock_cache_dir: Path | None = Field(
        default=None, description="Folder where the restock model cache also keeps fitted models and plan levels "
        "(JSON and .npz, at most 64 files of each), so that separate `restock plan` runs share them; None: memory only.",
    )
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
    promise_max_batch: int = Field(default=200, ge=1, le=200,
                                   description="Most items in one (public) POST /v1/promises.")
    promise_weekend_weight: float = Field(default=0.2, gt=0, le=1, description="Weight of Saturday/Sunday hours "
                                          "in fulfillment durations (1: calendar time; parcels rarely move then).")
    fulfillment_max_batch: int = Field(default=1000, ge=1)
    fulfillment_max_future_h: float = Field(
        default=24.0, gt=0, description="Fulfillment events dated more than this many hours after the server's "
                                        "clock are refused (422 naming the event), not learned from.")
    fulfillment_max_age_days: float = Field(
        default=365.0, gt=0, description="Fulfillment events (at or placed_at) dated more than this many days "
                                         "before the server's clock are refused (422 naming the event), not learned "
                                         "from: one event from 1970 would skew every duration it takes part in.")
    returns_inspection_delay_h: float = Field(
        default=24.0, ge=0, description="Hours a restocking return spends in inspection before its units are back "
                                        "on hand (0: at once).")
    analytics_parallel: int = Field(default=3, ge=1, le=8, description="Connections the fulfillment analytics "
                                    "report's three heavy queries use at once (1: one after another). On a quiet "
                                    "2-core machine, 1M order lines: SQLite 0.89 s with 3 vs 1.32 s with 1; "
                                    "PostgreSQL 0.75 s vs 0.70 s (docs/benchmarks/fulfillment_analytics.md).")
    analytics_max_days: int = Field(default=366, ge=1, description="Longest window GET /v1/analytics/fulfillment "
                                                                  "accepts (days).")
    # --- capacity -------------------------------------------------------------------------------
    # Per-replica capacity: requests/s one API replica serves within the p99 SLO. It must come from the checkout
    # benchmark's measured RPS at the p99 SLO; 200 is a placeholder until the integrator sets it from that run.
    capacity_per_replica_rps: float = Field(
        default=75.0, gt=0,
        description="Requests/s one replica serves. Default: the checkout benchmark's measured full-buy-path "
        "throughput per server process (docs/BENCHMARKS.md); it does not meet the 50 ms p99 SLO yet, so set it from "
        "your own measurement at your SLO.")
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
    capacity_rollup_retention_days: int = Field(
        default=90, ge=0, description="The worker deletes per-minute request rollups older than this many days, "
        "a day of the oldest at a time; 0 keeps them forever. At least capacity_history_days when set.")

    @field_validator("capacity_rollup_retention_days")
    @classmethod
    def _keep_what_the_plan_reads(cls, days: int, info: ValidationInfo) -> int:
        history = info.data.get("capacity_history_days")
        if days and history is not None and days < history:
            raise ValueError(f"must be 0 (keep) or at least capacity_history_days ({history}): the plan reads that "
                             "many days of request rollups")
        return days
    capacity_deployment: str = Field(default="shopfloor-api")
    capacity_namespace: str = Field(default="shopfloor")
    capacity_prometheus_url: str = Field(default="http://prometheus-operated.monitoring.svc:9090")
    capacity_rps_query: str = Field(default='sum(rate(shopfloor_http_requests_total{service="shopfloor-api"}[2m]))')
    capacity_cron_timezone: str = Field(default="Etc/UTC")
    capacity_planner_url: str = Field(
        default="", description="Where KEDA's metrics-api trigger polls the predictive planner's replica count "
        "(GET /v1/plans/capacity/desired). Empty: http://<capacity_deployment>.<capacity_namespace>.svc:8000/...; "
        "'off': no such trigger (the manifests then carry only the plan's cron windows and the reactive floors).")
    capacity_planner_auth: str = Field(
        default="shopfloor-capacity-scaler", description="KEDA TriggerAuthentication (and Secret) holding the "
        "bearer token, a `scaler`-scoped API key, for the planner trigger.")
    capacity_warm_top_n: int = Field(default=50, ge=1)
    # Product URL to warm: the storefront's product page (what the edge caches); {country} is the default country.
    capacity_warm_product_url: str = Field(default="/v1/products/{sku}?country={country}")
    capacity_warm_promise_url: str = Field(default="/v1/promise?sku={sku}&country={country}")
    capacity_warm_default_country: str = Field(default="US", min_length=2, max_length=2)

    # --- two regions (active/passive) ----------------------------------------------------------------
    regions_dir: Path = Field(default=Path("var/regions"), description="Where `shopfloor regions` keeps etcd, both "
                              "regions' PostgreSQL data (Patroni), pid files and logs.")
    regions_port_base: int = Field(default=25400, ge=1024, le=65000, description="etcd listens here (+1 its peer "
                                   "port); PostgreSQL A/B on +10/+11, Patroni REST A/B on +20/+21, the apps A/B on "
                                   "+30/+31.")
    regions_synchronous: bool = Field(default=True, description="Synchronous replication (Patroni synchronous_mode): "
                                      "a commit in A returns once B has it, so failover loses no acknowledged order.")
    regions_ttl_s: int = Field(default=20, ge=20, le=300, description="Patroni leader-key TTL: how long a dead "
                               "primary region holds the key before the standby may take over.")

    # --- storefront read path and edge cache ------------------------------------------------------
    read_database_url: str | None = Field(
        default=None, description="A PostgreSQL standby (or any read-only copy): storefront product reads and "
                                  "search go there; writes never do. Unset: reads use database_url.")
    storefront_plenty_units: int = Field(default=50, ge=1, description="Units available at or above which a "
                                         "product page is cached for storefront_max_age_plenty_s.")
    storefront_max_age_plenty_s: int = Field(default=300, ge=0, description="Edge TTL of a well-stocked product.")
    storefront_max_age_low_s: int = Field(default=30, ge=0, description="Edge TTL of an in-stock product with "
                                          "fewer than storefront_plenty_units left.")
    storefront_max_age_limited_s: int = Field(default=5, ge=0, description="Edge TTL of a product near sell-out "
                                              "(availability limited).")
    storefront_max_age_unavailable_s: int = Field(default=30, ge=0, description="Edge TTL of a sold-out or "
                                                  "backordered product (a restock purges it).")
    storefront_max_age_listing_s: int = Field(default=60, ge=0, description="Edge TTL of search and listings.")
    storefront_stale_if_error_s: int = Field(default=86_400, ge=0, description="How long the edge may serve the "
                                             "last copy while the origin fails (RFC 5861 stale-if-error).")
    storefront_budget_ms: float = Field(default=150.0, gt=0, le=10_000, description="Time the product page waits "
                                        "for the delivery promise and alternatives; past it the page is served "
                                        "without them (degraded) and cached briefly.")
    storefront_max_alternatives: int = Field(default=3, ge=0, le=20)
    storefront_risk_units: int = Field(default=20, ge=1, description="Fewer units than this (or not in_stock): "
                                       "the page lists in-stock alternatives.")
    storefront_threads: int = Field(default=16, ge=1, le=256, description="Threads computing promises and "
                                    "alternatives for product pages.")
    edge_dir: Path = Field(default=Path("var/edge"), description="Where `shopfloor edge` writes nginx configs, "
                                                                   "caches, logs and pid files.")
    edge_origin_url: str = Field(default="http://127.0.0.1:8000", description="The origin (`shopfloor serve`) "
                                                                            "the shield tier fetches from.")
    edge_origin_backup_urls: list[str] = Field(
        default=[], max_length=4, description="Origins the shield falls back to while edge_origin_url refuses "
                                              "connections or times out (nginx `backup` servers): region B's app "
                                              "for two regions (`shopfloor edge up --regions` sets both).")
    edge_node_ports: list[int] = Field(default=[8081, 8082], min_length=1, max_length=8,
                                       description="Ports of the edge nodes (points of presence), one per node.")
    edge_shield_port: int = Field(default=8090, ge=1, le=65535, description="Port of the shield tier.")
    edge_origin_timeout_s: float = Field(default=2.0, gt=0, le=60, description="The shield's connect/read timeout "
                                         "towards the origin; past it a cached copy is served stale.")
    edge_purge_interval_s: float = Field(default=0.5, gt=0, le=60, description="How often the purger compares "
                                         "stock bands and prices with what it last saw.")
    edge_warm_destinations: list[str] = Field(
        default=["US:94107"], description="COUNTRY:POSTAL_CODE destinations `shopfloor edge warm` requests each "
                                          "warm-list product for.")
    edge_rate_limit_rps: int = Field(default=200, ge=1, description="limit_req rate per client address of "
                                     "GET /v1/queue/{token} at each edge node (requests per second).")
    edge_checkout_rate_per_min: int = Field(default=120, ge=1, description="limit_req rate per client address of "
                                            "POST /v1/checkouts at each edge node (requests per minute).")
    edge_limit_burst: int = Field(default=10, ge=0, le=10_000, description="limit_req burst (answered without "
                                  "delay) of the edge's checkout and queue-status limits.")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    # --- payments ---------------------------------------------------------------------------------
    # Processor routing. The order is the boot default; `PUT /v1/admin/processors/order` overrides it at runtime
    # (persisted in the database so every server process follows it).
    payments_processors: list[str] = Field(
        default=["primary", "secondary"], min_length=1, description="Processors in failover order."
    )
    payments_checkout_budget_s: float = Field(
        default=2.0, gt=0, description="Time checkout may spend authorizing inline before accepting as pending."
    )
    payments_worker_budget_s: float = Field(default=10.0, gt=0, description="Budget for one worker retry.")
    payments_call_timeout_s: float = Field(default=0.8, gt=0, description="Timeout of one processor call.")
    payments_status_timeout_s: float = Field(default=0.5, gt=0, description="Timeout of a status look-up.")
    payments_breaker_window_s: float = Field(default=10.0, gt=0, description="Breaker sliding window length.")
    payments_breaker_min_calls: int = Field(default=10, ge=1, description="Calls in the window before it may open.")
    payments_breaker_failure_pct: float = Field(default=50.0, gt=0, le=100)
    payments_breaker_open_s: float = Field(default=5.0, gt=0, description="How long an open breaker rejects.")
    payments_breaker_half_open_probes: int = Field(default=2, ge=1, description="Successes needed to close.")
    payments_pending_backoff_base_s: float = Field(default=1.0, gt=0)
    payments_pending_backoff_max_s: float = Field(default=120.0, gt=0)
    payments_runtime_cache_ttl_s: float = Field(
        default=0.5, ge=0, description="How long a process caches fault config and processor order."
    )
    payments_health_snapshot_interval_s: float = Field(default=2.0, gt=0)
    payments_call_threads: int = Field(default=32, ge=1, description="Threads that run processor calls.")
    # Boot-time fault configuration of the simulated processors / rate service, e.g.
    # SHOPFLOOR_PAYMENTS_SIM_FAULTS='{"primary": {"latency_ms": 80, "error_rate": 0.01}}'.
    payments_sim_faults: dict[str, dict] = Field(default_factory=dict)
    payments_sim_seed: int | None = Field(default=None, description="Seed for the simulators' dice.")
    payments_sim_url: str | None = Field(
        default=None, description="Base URL of the simulator process (`shopfloor simulate serve`); unset: the "
                                  "simulated processors and rate service run inside this process.")
    shipping_quote_timeout_s: float = Field(default=0.25, gt=0, description="Inline rate-quote timeout.")
    shipping_reconcile_timeout_s: float = Field(default=2.0, gt=0)
    shipping_quote_cache_ttl_s: float = Field(
        default=2.0, ge=0, le=3600, description="Reuse a live rate quote for the same destination for this many "
                                                "seconds (0: ask the rate service on every checkout). Provisional "
                                                "quotes are never reused.")
    shipping_breaker_consecutive_failures: int = Field(
        default=5, ge=0, description="Open the rate-service breaker after this many failed quotes in a row (0: only "
                                     "the windowed failure percentage opens it).")
    # Provisional shipping estimates by destination country ("*" = any other), used when the rate service fails.
    shipping_provisional_rates: dict[str, dict] = Field(
        default_factory=lambda: {
            "US": {"amount": 899, "currency": "USD", "days": 5},
            "CA": {"amount": 1499, "currency": "USD", "days": 7},
            "BR": {"amount": 2490, "currency": "BRL", "days": 9},
            "DE": {"amount": 690, "currency": "EUR", "days": 3},
            "*": {"amount": 1999, "currency": "USD", "days": 10},
        }
    )
    smtp_host: str | None = Field(default=None, description="SMTP host; unset = write mail to maildir_path.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="orders@shopfloor.local")
    smtp_timeout_s: float = Field(default=5.0, gt=0)
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection with STARTTLS (the server's certificate is verified). "
                                   "Required with smtp_username unless smtp_host is a loopback relay (127.0.0.1, "
                                   "::1, localhost), so a password never crosses the network in clear.")
    smtp_username: str | None = Field(
        default=None, description="SMTP login. Needs smtp_starttls when smtp_host is another machine (refused "
                                  "otherwise); a relay on this machine may take it over plain SMTP.")
    smtp_password: SecretStr | None = None

    @field_validator("smtp_username")
    @classmethod
    def _no_login_in_clear(cls, username: str | None, info: ValidationInfo) -> str | None:
        if smtp_login_in_clear(info.data.get("smtp_host"), bool(info.data.get("smtp_starttls")), username):
            raise ValueError("set SHOPFLOOR_SMTP_STARTTLS=true: the SMTP password would cross the network in clear "
                             f"to {info.data['smtp_host']} (a login without TLS is allowed to a relay on this machine "
                             "only: 127.0.0.1, ::1, localhost)")
        return username
    maildir_path: Path | None = Field(default=None, description="Maildir folder; default <data_dir>/maildir.")
    warehouse_webhook_url: str | None = Field(default=None, description="Warehouse handoff endpoint.")
    warehouse_webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_<base64>, or any string used as its bytes).")
    warehouse_webhook_rotation_secrets: list[SecretStr] = Field(
        default_factory=list, description="Further secrets every delivery is also signed with, while a rotation runs "
                                          "(webhook-signature then carries one v1 signature per secret).")
    warehouse_webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_signature_tolerance_s: int = Field(default=300, ge=1)
    fraud_hold_threshold: int = Field(default=60, ge=1, description="Score at or above which orders go on_hold.")
    fraud_velocity_window_s: int = Field(default=3600, ge=1)
    fraud_velocity_max_per_customer: int = Field(default=5, ge=1)
    fraud_velocity_max_per_token: int = Field(default=3, ge=1)
    fraud_amount_outlier_factor: float = Field(default=5.0, gt=1)
    fraud_history_orders: int = Field(default=500, ge=10, description="Recent orders used as 'typical'.")
    # --- tower ----------------------------------------------------------------------------------
    tower_rules_file: Path = Field(default=Path("rules.yaml"), description="Rules file for `shopfloor rules run`.")
    tower_rules_interval_s: float = Field(default=60.0, gt=0, description="How often the worker evaluates rules.")
    tower_http_timeout_s: float = Field(default=5.0, gt=0, description="Timeout for webhooks and cache warming.")
    tower_smtp_host: str | None = Field(default=None, description="SMTP server for mail alerts. Unset: where the "
                                        "order mail goes (smtp_host, or with none the maildir at maildir_path).")
    tower_smtp_port: int = Field(default=25, ge=1, le=65535)
    tower_mail_from: str = Field(default="shopfloor@localhost")
    tower_beacon_max_batch: int = Field(default=1000, ge=1, description="Most events in one beacon POST.")
    tower_beacon_flush_s: float = Field(
        default=1.0, ge=0, description="Beacon rollups are group-committed this often (0: write through)."
    )
    tower_signal_window_s: int = Field(default=900, ge=60, description="Window for rate/latency signals.")
    tower_rollup_retention_days: int = Field(
        default=35, ge=0, description="The worker deletes funnel rollups (per-minute counts and latency buckets) "
        "older than this many days, a day of the oldest at a time; 0 keeps them forever. The anomaly monitor "
        "learns from the last 7 days and the dashboard compares with yesterday, so keep at least 8.")
    tower_analytics_window_days: int = Field(default=30, ge=1, le=366, description="Window of the fulfillment "
                                             "and returns signals (return_rate_<sku>, pack_p90_h_<warehouse> ...).")
    tower_analytics_ttl_s: float = Field(default=60.0, ge=0, description="How long one fulfillment analytics "
                                         "report serves the rules before it is computed again.")
    # --- dashboard --------------------------------------------------------------------------------
    # Signs the /dashboard session cookie (HMAC-SHA256). Unset: a random secret per process, so sessions end on
    # restart and are NOT shared between server processes; set it (SHOPFLOOR_DASHBOARD_SESSION_SECRET) when the
    # server runs more than one worker or replica.
    dashboard_session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(__import__("secrets").token_urlsafe(32)),
        description="HMAC-SHA256 key for dashboard session cookies; default random per process.",
    )
    dashboard_session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600,
                                         description="How long a dashboard login lasts.")
    dashboard_cookie_secure: bool = Field(
        default=False, description="Always mark the dashboard cookie Secure (set this when users reach the server "
                                   "over TLS, e.g. behind a TLS-terminating proxy). Otherwise it is Secure only on "
                                   "requests that arrived over https.")
    dashboard_refresh_s: float = Field(default=5.0, ge=1, description="How often the dashboard page refreshes.")
    dashboard_login_max_failures: int = Field(
        default=10, ge=1, le=10_000, description="Refused dashboard logins per client address before it must wait.")
    dashboard_login_window_s: float = Field(default=300.0, gt=0, le=86_400,
                                            description="Window over which refused dashboard logins are counted.")
    # --- integrations -------------------------------------------------------------------------------
    webhook_allowed_hosts: str = Field(
        default="", description="Hosts (names or IP addresses) that outbound webhooks may reach even though they "
                                "resolve to private, loopback or link-local addresses (e.g. 127.0.0.1 for tests), "
                                "comma-separated or a JSON list like the other list settings. Every other such "
                                "target is refused.")

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value):
        """Both forms the other list settings are written in: ``a,b`` and the JSON ``["a", "b"]`` (a list passed
        in code too); kept as ``a,b``."""
        import json

        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError('not a JSON list of host names (write ["127.0.0.1", "hooks.local"] or '
                                 '127.0.0.1,hooks.local)') from None
            if not isinstance(value, list):
                raise ValueError("not a list of host names")
        if isinstance(value, (list, tuple)):
            if not all(isinstance(h, str) for h in value):
                raise ValueError("a list of host names must hold strings only")
            bad = [h for h in value if "," in h]
            if bad:
                raise ValueError(f"host name {bad[0]!r} contains a comma")
            return ",".join(h.strip() for h in value if h.strip())
        return value
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=60, description="Timeout of one outbound delivery.")
    webhook_endpoint_concurrency: int = Field(
        default=2, ge=1, le=64, description="Deliveries in flight to one subscriber endpoint at most.")
    webhook_dispatch_threads: int = Field(default=16, ge=1, le=256, description="Outbound delivery threads.")
    webhook_max_client_error_attempts: int = Field(
        default=3, ge=1, le=8, description="Attempts after which a 4xx answer (other than 408/410/429) is final.")
    webhook_disable_after_s: float = Field(
        default=5 * 86_400, gt=0, description="An endpoint failing without a success for this long is disabled "
                                              "and a tower alert raised.")
    webhook_max_retry_after_s: float = Field(default=36_000, gt=0,
                                             description="The longest Retry-After an endpoint is obeyed for.")
    stock_low_threshold: int = Field(
        default=5, ge=0, description="stock.low is published when a level set or consumed by an integration drops "
                                     "to this many available units or fewer.")
    shopify_webhook_max_age_s: float = Field(
        default=6 * 3600, gt=0, description="Shopify deliveries whose X-Shopify-Triggered-At is older are refused.")
    shopify_webhook_max_bytes: int = Field(default=1_000_000, ge=1024,
                                           description="Largest Shopify webhook body accepted.")

    @property
    def webhook_allowed_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip())
