"""The promise service as the app and CLI use it: store, cached statistics and engine, built from Settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import Engine

from ..config import Settings
from ..domain.clock import Clock, SystemClock
from ..domain.promise import BusinessCalendar, DegradationPolicy
from ..fulfillment.stats import FulfillmentEvent, StatsConfig
from ..store.promise import IngestResult, SqlFulfillmentStore, SqlStatsSource, SqlStockReader
from .engine import IncomingStock, PromiseConfig, PromiseEngine


def promise_config(settings: Settings) -> PromiseConfig:
    policy = DegradationPolicy(
        stale_feed_after_h=settings.promise_stale_feed_after_h,
        stale_widen_days=settings.promise_stale_widen_days,
        backlog_ratio_trigger=settings.promise_backlog_ratio_trigger,
        missed_pack_trigger=settings.promise_missed_pack_trigger,
    )
    return PromiseConfig(
        confidence=settings.promise_confidence,
        limited_threshold=settings.promise_limited_threshold,
        calendar=BusinessCalendar(cutoff_hour=settings.promise_cutoff_hour),
        degradation=policy,
        region_map=settings.promise_region_map,
        cache_windows=True,
    )


def stats_config(settings: Settings) -> StatsConfig:
    hl = settings.promise_half_life_days * 24.0
    return StatsConfig(processing_half_life_h=hl, transit_half_life_h=hl, pack_target_h=settings.promise_pack_target_h,
                       min_lane_weight=settings.promise_min_lane_weight,
                       weekend_weight=settings.promise_weekend_weight)


@dataclass
class PromiseService:
    """What routes and commands use: ``engine`` for promises, ``ingest`` for fulfillment events."""

    store: SqlFulfillmentStore
    source: SqlStatsSource
    engine: PromiseEngine
    clock: Clock

    def ingest(self, events: Sequence[FulfillmentEvent], now: datetime | None = None) -> IngestResult:
        result = self.store.ingest(events, now or self.clock.now())
        self.source.refresh(force=True)
        return result

    def close(self) -> None:
        """Close the stock reader's kept connections (the engine's pool belongs to the container)."""
        close = getattr(getattr(self.engine, "stock", None), "close", None)
        if callable(close):
            close()


def build_promise_service(settings: Settings, engine: Engine, clock: Clock | None = None,
                          incoming: IncomingStock | None = None) -> PromiseService:
    """Wire the SQL adapters to the engine. ``incoming`` gives backorder ETAs from open purchase orders."""
    clock = clock or SystemClock()
    store = SqlFulfillmentStore(engine, stats_config(settings), settings.returns_inspection_delay_h)
    source = SqlStatsSource(store, refresh_s=settings.promise_stats_refresh_s, clock=clock)
    eng = PromiseEngine(SqlStockReader(engine), source, promise_config(settings), incoming=incoming, clock=clock)
    return PromiseService(store, source, eng, clock)


_build_lock = threading.Lock()


def promise_service(container) -> PromiseService:
    """The container's promise service, built on first use (the integrator may register it in bootstrap)."""
    svc = container.services.get("promise")
    if svc is None:
        with _build_lock:  # routes run in a thread pool: build it once
            svc = container.services.get("promise")
            if svc is None:
                svc = container.services["promise"] = build_promise_service(
                    container.settings, container.engine, container.clock)
    return svc
