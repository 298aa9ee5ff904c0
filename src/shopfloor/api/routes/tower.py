"""Tower routes: storefront beacons in; suppressions/alternatives for the storefront; alerts, actions and funnel
JSON for the admin dashboard."""

from __future__ import annotations

from collections import Counter as Tally
from datetime import timedelta
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container
from ...domain.errors import InvalidInput
from ...store.tower import TowerRepository
from ...tower import dashboard_data
from ...tower.service import FunnelBuffer, aggregate_events
from ..deps import get_container, require_scope
from ..fields import UtcOrNaiveDatetime

router = APIRouter()

StorefrontEventType = Literal["page_view", "product_view", "add_to_cart", "checkout_started"]
MAX_PAST = timedelta(hours=24)
MAX_FUTURE = timedelta(minutes=5)


class StorefrontEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StorefrontEventType
    at: Optional[UtcOrNaiveDatetime] = Field(None, description="When it happened (UTC); default: when received.")
    page_load_ms: Optional[float] = Field(None, ge=0, le=600_000, description="Page-load time in ms.")
    sku: Optional[str] = Field(None, min_length=1, max_length=64)
    session: Optional[str] = Field(None, min_length=1, max_length=128)


class StorefrontBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[StorefrontEvent] = Field(..., min_length=1, max_length=1000)


BEACON_EXAMPLES = {
    "one visit": {"summary": "A shopper's visit: a page, a product, the cart and the checkout page (time of receipt)",
                  "value": {"events": [
                      {"type": "page_view", "session": "5f1c2a9e0b7d4c3a", "page_load_ms": 412},
                      {"type": "product_view", "sku": "85123A", "session": "5f1c2a9e0b7d4c3a", "page_load_ms": 446},
                      {"type": "add_to_cart", "sku": "85123A", "session": "5f1c2a9e0b7d4c3a"},
                      {"type": "checkout_started", "session": "5f1c2a9e0b7d4c3a", "page_load_ms": 498}]}},
}

_UNTIL = "2026-12-01T16:15:00+00:00"
_SUPPRESSION = {"sku": "FLASH-001", "reason": "rule flash_sale_sold_out: stock_cover_days_FLASH_001 < 1",
                "alternatives": ["85123A", "21733"], "until": _UNTIL}
#: What the routes answer (the flash-sale lantern has sold out: the demo's rules suppress its promotion).
BEACONS_OUT = {"accepted": 4, "rollup_rows": 4}
SUPPRESSED_OUT = {"suppressions": [{**_SUPPRESSION, "created_at": "2026-12-01T10:15:00+00:00"}]}
ALTERNATIVES_OUT = {"sku": "FLASH-001", "suppressed": True, "alternatives": ["85123A", "21733"], "until": _UNTIL}
ALERTS_OUT = {"alerts": [
    {"id": 17, "at": "2026-12-01T10:14:00+00:00", "source": "detector", "metric": "checkout_success_rate",
     "kind": "drop", "observed": 0.71, "expected": 0.97, "lower": 0.9, "upper": 1.0, "score": 4.2,
     "message": "checkout success rate 0.71 below the expected band"}]}
ACTIONS_OUT = {"actions": [
    {"id": 9, "at": "2026-12-01T10:15:00+00:00", "rule": "flash_sale_sold_out",
     "action_key": "flash_sale_sold_out#0:suppress_promotion", "action_type": "suppress_promotion",
     "status": "applied", "dry_run": False, "reason": "stock_cover_days_FLASH_001 < 1",
     "signal_values": {"stock_cover_days_FLASH_001": 0.4}, "before": {"suppression": None},
     "after": {"suppression": {"sku": "FLASH-001", "alternatives": ["85123A", "21733"], "until": _UNTIL,
                               "reason": "rule flash_sale_sold_out: stock_cover_days_FLASH_001 < 1"}},
     "error": None}]}
FUNNEL_OUT = {
    "series": {"minutes": ["2026-12-01T10:13:00+00:00", "2026-12-01T10:14:00+00:00"],
               "series": {"page_view": {"count": [412, 398], "latency_ms_mean": [431.0, 446.5],
                                        "latency_ms_p95": [1180.0, 1215.4],
                                        "latency_buckets": [0, 0, 0, 0, 0, 2, 9, 61, 297, 301, 106, 28, 6, 0, 0]},
                          "product_view": {"count": [236, 251], "latency_ms_mean": [452.2, 470.1],
                                           "latency_ms_p95": [1240.3, 1302.0],
                                           "latency_buckets": [0, 0, 0, 0, 0, 1, 4, 30, 171, 182, 69, 25, 5, 0, 0]},
                          "add_to_cart": {"count": [49, 47], "latency_ms_mean": [None, None],
                                          "latency_ms_p95": [None, None]},
                          "checkout_started": {"count": [30, 31], "latency_ms_mean": [501.3, 489.9],
                                               "latency_ms_p95": [1320.0, 1290.5],
                                               "latency_buckets": [0, 0, 0, 0, 0, 0, 1, 3, 19, 22, 12, 4, 0, 0, 0]},
                          "checkout_attempt": {"count": [29, 29], "latency_ms_mean": [38.2, 41.7],
                                               "latency_ms_p95": [88.0, 96.3],
                                               "latency_buckets": [0, 0, 4, 33, 14, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0]},
                          "checkout_succeeded": {"count": [27, 28], "latency_ms_mean": [None, None],
                                                 "latency_ms_p95": [None, None]},
                          "order_confirmed": {"count": [27, 28], "latency_ms_mean": [None, None],
                                              "latency_ms_p95": [None, None]}}},
    "conversion": {"window_minutes": 2, "steps": [
        {"stage": "page_view", "count": 810, "from_previous": None, "from_first": 1.0},
        {"stage": "product_view", "count": 487, "from_previous": 0.6012, "from_first": 0.6012},
        {"stage": "add_to_cart", "count": 96, "from_previous": 0.1971, "from_first": 0.1185},
        {"stage": "checkout_started", "count": 61, "from_previous": 0.6354, "from_first": 0.0753},
        {"stage": "checkout_attempt", "count": 58, "from_previous": 0.9508, "from_first": 0.0716},
        {"stage": "checkout_succeeded", "count": 55, "from_previous": 0.9483, "from_first": 0.0679},
        {"stage": "order_confirmed", "count": 55, "from_previous": 1.0, "from_first": 0.0679}]},
}
DEGRADATIONS_OUT = {"degradations": [
    {"warehouse": "gb-south", "reason": "rule handoff_backlog: handoff_delay_p50_h_gb_south > 24", "extra_days": 2,
     "until": "2026-12-01T22:15:00+00:00", "created_at": "2026-12-01T10:15:00+00:00"}]}


def _example(value: dict, status: int = 200) -> dict:
    return {status: {"content": {"application/json": {"example": value}}}}


def _repo(container: Container) -> TowerRepository:
    repo = container.services.get("tower.repository")
    if repo is None:
        repo = container.services.setdefault("tower.repository", TowerRepository(container.engine))
    return repo


def _buffer(container: Container) -> FunnelBuffer:
    buf = container.services.get("tower.funnel_buffer")
    if buf is None:
        buf = container.services.setdefault(
            "tower.funnel_buffer", FunnelBuffer(_repo(container), container.settings.tower_beacon_flush_s))
    return buf


@router.post("/v1/events/storefront", status_code=202, tags=["tower"], responses=_example(BEACONS_OUT, 202))
def ingest_storefront_events(
    batch: Annotated[StorefrontBatch, Body(openapi_examples=BEACON_EXAMPLES)],
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("storefront")),
) -> dict:
    """Accept a batch of storefront beacons; they are folded into per-minute funnel rollups in one statement."""
    if len(batch.events) > container.settings.tower_beacon_max_batch:
        raise InvalidInput(f"at most {container.settings.tower_beacon_max_batch} events per batch",
                           [{"field": "events", "max": container.settings.tower_beacon_max_batch}])
    now = container.clock.now()
    folded = []
    for i, ev in enumerate(batch.events):
        at = now if ev.at is None else ev.at  # in UTC already (UtcOrNaiveDatetime)
        if at < now - MAX_PAST or at > now + MAX_FUTURE:
            raise InvalidInput(f"events.{i}.at: {at.isoformat()} is outside the accepted range (24 h back, "
                               "5 min ahead of the server's clock)",
                               [{"field": f"events.{i}.at", "value": at.isoformat()}])
        folded.append((at, ev.type, ev.page_load_ms))
    rows = aggregate_events(folded)
    _buffer(container).add(rows)
    metrics = container.services.get("tower.metrics")
    if metrics is not None:
        metrics.observe_storefront(Tally(ev.type for ev in batch.events),
                                   [ev.page_load_ms / 1000.0 for ev in batch.events if ev.page_load_ms is not None])
    return {"accepted": len(batch.events), "rollup_rows": len(rows)}


@router.get("/v1/promotions/suppressed", tags=["tower"], responses=_example(SUPPRESSED_OUT))
def suppressed_promotions(
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("storefront", "admin")),
) -> dict:
    """SKUs whose promotion is suppressed right now, with alternatives to promote instead."""
    return {"suppressions": _repo(container).active_suppressions(container.clock.now())}


@router.get("/v1/skus/{sku}/alternatives", tags=["tower"], responses=_example(ALTERNATIVES_OUT))
def sku_alternatives(
    sku: str = Path(..., min_length=1, max_length=64),
    limit: int = Query(3, ge=1, le=20),
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("storefront", "admin")),
) -> dict:
    """Alternatives for a SKU whose promotion is suppressed (empty when it is not suppressed)."""
    now = container.clock.now()
    current = _repo(container).get_suppression(sku, now)
    alternatives = list(current["alternatives"])[:limit] if current else []
    return {"sku": sku, "suppressed": current is not None, "alternatives": alternatives,
            "until": current["until"] if current else None}


@router.get("/v1/tower/alerts", tags=["tower"], responses=_example(ALERTS_OUT))
def tower_alerts(
    hours: float = Query(24, gt=0, le=24 * 90),
    limit: int = Query(100, ge=1, le=1000),
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("admin")),
) -> dict:
    """Alerts raised in the last ``hours``, newest first."""
    return {"alerts": dashboard_data.recent_alerts(_repo(container), container.clock.now(), hours, limit)}


@router.get("/v1/tower/actions", tags=["tower"], responses=_example(ACTIONS_OUT))
def tower_actions(
    limit: int = Query(100, ge=1, le=1000),
    rule: Optional[str] = Query(None, max_length=120),
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("admin")),
) -> dict:
    """The action log, newest first: what ran, why, the values seen, before and after."""
    return {"actions": dashboard_data.recent_actions(_repo(container), limit, rule)}


@router.get("/v1/tower/funnel", tags=["tower"], responses=_example(FUNNEL_OUT))
def tower_funnel(
    minutes: int = Query(60, ge=1, le=24 * 60),
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("admin")),
) -> dict:
    """Per-minute series per funnel stage plus step conversion, for the dashboard."""
    repo, now = _repo(container), container.clock.now()
    return {"series": dashboard_data.funnel_series(repo, now, minutes),
            "conversion": dashboard_data.funnel_conversion(repo, now, minutes)}


@router.get("/v1/tower/degradations", tags=["tower"], responses=_example(DEGRADATIONS_OUT))
def tower_degradations(
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("admin")),
) -> dict:
    """Warehouses whose promises are degraded right now (read by the promise engine too)."""
    return {"degradations": _repo(container).active_degradations(container.clock.now())}
