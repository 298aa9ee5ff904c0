"""``GET /v1/plans/capacity``: the next hours' replica plan, cache-warm list and (optionally) manifests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query

from ...bootstrap import Container
from ...domain.errors import InvalidInput
from ..deps import get_container, require_scope

if TYPE_CHECKING:
    from ...planning.capacity_service import CapacityService

router = APIRouter()


def capacity_service(container: Container) -> "CapacityService":
    """The registered service, or one built on the container's engine (the integrator may register it). The
    planning modules (pandas) are imported here, on the first plan request, not when the API starts."""
    from ...planning.capacity_service import service_for

    return service_for(container)


def _slot(start: str, end: str, request_at: str, replicas: int, mean: float, upper: float) -> dict[str, Any]:
    return {"start": f"2026-12-04T{start}:00+00:00", "end": f"2026-12-04T{end}:00+00:00",
            "request_at": f"2026-12-04T{request_at}:00+00:00", "replicas": replicas, "forecast_mean_rpm": mean,
            "forecast_upper_rpm": upper}


#: ``GET /v1/plans/capacity?horizon_minutes=45`` on the evening of a flash sale.
CAPACITY_PLAN_EXAMPLE = {
    "generated_at": "2026-12-04T21:00:00+00:00", "observed_minutes": 12810, "last_minute_requests": 14250.0,
    "reactive_floor_now": 5, "peak_replicas": 7,
    "policy": {"capacity_per_replica_rpm": 4500.0, "capacity_per_replica_rps": 75.0, "lag_minutes": 10,
               "headroom": 1.0, "quantile": 0.95, "target_utilization": 0.7, "slot_minutes": 15,
               "horizon_minutes": 45, "min_replicas": 2, "max_replicas": 50},
    "slots": [_slot("21:00", "21:15", "21:00", 6, 15120.0, 18210.5),
              _slot("21:15", "21:30", "21:05", 7, 17800.0, 21640.2),
              _slot("21:30", "21:45", "21:20", 7, 16950.0, 20880.7)],
    "windows": [_slot("21:00", "21:45", "21:00", 7, 17800.0, 21640.2)],
    "events": [],
    "planner_now": {"at": "2026-12-04T21:00:00+00:00", "desired_replicas": 6, "planner_replicas": 6,
                    "capped_at_max_replicas": False, "reactive_replicas": 5, "anchor": "2026-11-26T00:00:00+00:00",
                    "replayed_minutes": 12780},
    "cache_warm": {"source": "recent_orders", "urls": [
        {"url": "/v1/products/FLASH-001?country=GB", "kind": "product", "sku": "FLASH-001", "region": None,
         "expected_demand": 41.5},
        {"url": "/v1/promise?sku=FLASH-001&country=GB", "kind": "promise", "sku": "FLASH-001", "region": "GB",
         "expected_demand": 41.5}]},
}


@router.get("/v1/plans/capacity", tags=["plans"],
            responses={200: {"content": {"application/json": {"example": CAPACITY_PLAN_EXAMPLE}}}})
def get_capacity_plan(
    horizon_minutes: int | None = Query(default=None, ge=15, le=7 * 24 * 60, description="Plan length."),
    slot_minutes: int | None = Query(default=None, ge=1, le=24 * 60, description="Plan grain."),
    manifests: bool = Query(default=False, description="Include the KEDA ScaledObject and HPA fallback."),
    _key: str = Depends(require_scope("admin")),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """Replicas per slot from the upper-quantile traffic forecast over the recorded request rollups, never below
    the reactive (HPA) signal, plus the product/promise URLs to warm before the window opens, and `planner_now`:
    what the predictive planner asks for this minute (as `GET /v1/plans/capacity/desired`)."""
    from ...planning.capacity import CapacityInputError
    from ...planning.capacity_service import desired_now

    svc = capacity_service(container)
    try:
        plan = svc.plan(horizon_minutes=horizon_minutes, slot_minutes=slot_minutes)
        body = plan.to_dict()
        # What the predictive planner asks for now (the slot length and horizon do not change it).
        body["planner_now"] = desired_now(container, svc).to_dict()
        entries, source = svc.warm_list(plan)
        body["cache_warm"] = {"source": source, "urls": [e.to_dict() for e in entries]}
        if manifests:
            body["manifests"] = svc.manifests(plan)
    except CapacityInputError as exc:
        raise InvalidInput(exc.message, [{"field": exc.field}]) from exc
    return body


@router.get(
    "/v1/plans/capacity/desired",
    tags=["plans"],
    responses={200: {"content": {"application/json": {"example": {
        "at": "2026-12-04T21:30:00+00:00", "desired_replicas": 7, "planner_replicas": 7,
        "capped_at_max_replicas": False, "reactive_replicas": 5, "anchor": "2026-11-26T00:00:00+00:00",
        "replayed_minutes": 12810, "planner": "PredictivePlanner"}}}}},
)
def get_desired_replicas(
    _key: str = Depends(require_scope("scaler", "admin")),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """The replica count the predictive planner asks for this minute: the same planner and configuration the
    capacity backtest scores, replayed minute by minute over the recorded request rollups. KEDA polls it with a
    `metrics-api` trigger (`valueLocation: desired_replicas`, `targetValue: 1`); a `scaler`-scoped key is enough.
    The first call of a UTC day replays about eight days of minutes (about 0.4 s); later calls only the
    minutes since."""
    from ...planning.capacity import CapacityInputError
    from ...planning.capacity_service import desired_now

    try:
        decision = desired_now(container)
    except CapacityInputError as exc:
        raise InvalidInput(exc.message, [{"field": exc.field}]) from exc
    body = decision.to_dict()
    body["planner"] = "PredictivePlanner"
    return body
