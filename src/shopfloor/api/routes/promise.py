"""Promise and fulfillment-event routes. Thin: validation here, the work in shopfloor.promise."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container
from ...domain.errors import InvalidInput
from ...fulfillment import EventIn, EventWindow
from ...promise.service import promise_service
from ..deps import get_container, require_scope

router = APIRouter()

#: Most items one anonymous ``POST /v1/promises`` may carry (a listing page shows far fewer).
PROMISE_BATCH_HARD_MAX = 200


# ``EventIn`` (one fulfillment event) is defined in shopfloor.fulfillment.events: `shopfloor fulfillment import`
# holds every row of a file to the same rules.


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class IngestOut(BaseModel):
    accepted: int
    duplicates: int


class PromiseOut(BaseModel):
    sku: str
    qty: int
    status: Literal["in_stock", "limited", "backorder", "unavailable"]
    warehouse: str | None
    ship_by: date | None
    deliver_by: date | None
    eta_p50: date | None
    confidence: float
    provisional: bool
    reasons: list[str]
    available: int
    backorder_expected_at: datetime | None


class PromiseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(default=1, ge=1, le=10_000, strict=True)
    country: str = Field(pattern=r"^[A-Za-z]{2}$")
    postal_code: str = Field(default="", max_length=16)


class PromiseBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": [{"sku": "85123A", "qty": 2, "country": "GB", "postal_code": "EC1A 1BB"},
                   {"sku": "SCARCE-001", "country": "GB", "postal_code": "M1 1AE"}]}]})
    # Public (no key): the cap bounds the work one anonymous request can ask for, before any of it is parsed
    # further. ``promise_max_batch`` may lower it.
    items: list[PromiseRequest] = Field(min_length=1, max_length=PROMISE_BATCH_HARD_MAX)


class PromiseBatchOut(BaseModel):
    promises: list[PromiseOut]


def _cache_headers(response: Response, container: Container) -> None:
    s = container.settings
    response.headers["Cache-Control"] = (
        f"public, max-age={s.promise_cache_max_age_s}, stale-while-revalidate={s.promise_cache_swr_s}"
    )
    response.headers["Vary"] = "Accept-Encoding"


_ORDER = "ord_5c0f2d9a7e1b4c38a6d2e4f1b3a5c7d9"
_TO = {"warehouse": "gb-south", "country": "GB", "postal_code": "EC1A 1BB", "placed_at": "2026-11-30T09:12:00Z"}
EVENTS_EXAMPLES = {
    "an_order_from_approval_to_a_return": {
        "summary": "One order approved, packed, handed over, delivered, then one unit returned damaged",
        "value": {"events": [
            {"event_id": f"{_ORDER}:approved", "order_id": _ORDER, "type": "approved", "at": "2026-11-30T09:20:00Z",
             **_TO},
            {"event_id": f"{_ORDER}:packed", "order_id": _ORDER, "type": "packed", "at": "2026-11-30T14:05:00Z", **_TO},
            {"event_id": f"{_ORDER}:handed_to_carrier", "order_id": _ORDER, "type": "handed_to_carrier",
             "at": "2026-11-30T17:30:00Z", "carrier": "royal-mail", **_TO},
            {"event_id": f"{_ORDER}:delivered", "order_id": _ORDER, "type": "delivered", "at": "2026-12-01T09:45:00Z",
             "carrier": "royal-mail", **_TO},
            {"event_id": f"{_ORDER}:returned:1", "order_id": _ORDER, "type": "returned", "at": "2026-12-01T09:58:00Z",
             "warehouse": "gb-south", "sku": "85123A", "qty": 1, "reason": "damaged", "restock": False},
        ]},
    },
}


@router.post("/v1/fulfillment/events", response_model=IngestOut, tags=["fulfillment"], responses={200: {"content": {
    "application/json": {"example": {"accepted": 5, "duplicates": 0}}}}})
def ingest_events(
    batch: Annotated[EventBatch, Body(openapi_examples=EVENTS_EXAMPLES)],
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("ingest", "admin")),
) -> IngestOut:
    """Fulfillment events, batched. Idempotent by ``event_id``; any order of arrival."""
    if len(batch.events) > container.settings.fulfillment_max_batch:
        raise InvalidInput(
            f"at most {container.settings.fulfillment_max_batch} events per batch",
            [{"field": "events", "max": container.settings.fulfillment_max_batch, "got": len(batch.events)}],
        )
    window = EventWindow.from_settings(container.settings, container.clock.now())
    for i, e in enumerate(batch.events):
        missing = e.missing_return_fields()
        if missing:
            raise InvalidInput(
                f"events.{i}.{missing[0]}: a returned event needs {', '.join(missing)}",
                [{"field": f"events.{i}.{name}", "event_id": e.event_id, "reason": "required for type returned"}
                 for name in missing])
        out = window.check(e)
        if out is not None:
            raise InvalidInput(f"events.{i}.{out.field}: {out.text}",
                               [{"field": f"events.{i}.{out.field}", "event_id": e.event_id,
                                 out.bound: out.limit.isoformat()}])
    events = [e.to_event() for e in batch.events]
    result = promise_service(container).ingest(events)
    metrics = container.services.get("tower.metrics")
    if metrics is not None:
        metrics.observe_fulfillment(result.accepted_by_type)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.get("/v1/promise", response_model=PromiseOut, tags=["promise"], responses={200: {"content": {
    "application/json": {"example": {
        "sku": "85123A", "qty": 2, "status": "in_stock", "warehouse": "gb-south", "ship_by": "2026-12-02",
        "deliver_by": "2026-12-04", "eta_p50": "2026-12-03", "confidence": 0.9, "provisional": False, "reasons": [],
        "available": 118, "backorder_expected_at": None}}}}})
def get_promise(
    response: Response,
    sku: str = Query(min_length=1, max_length=64),
    qty: int = Query(default=1, ge=1, le=10_000),
    country: str = Query(pattern=r"^[A-Za-z]{2}$"),
    postal_code: str = Query(default="", max_length=16),
    container: Container = Depends(get_container),
) -> dict:
    """The promise for one SKU and destination. Public and CDN-cacheable (short max-age, stale-while-revalidate)."""
    promise = promise_service(container).engine.promise_for(sku, qty, country, postal_code)
    _cache_headers(response, container)
    return promise.to_dict()


@router.post("/v1/promises", response_model=PromiseBatchOut, tags=["promise"], responses={200: {"content": {
    "application/json": {"example": {"promises": [
        {"sku": "85123A", "qty": 2, "status": "in_stock", "warehouse": "gb-south", "ship_by": "2026-12-02",
         "deliver_by": "2026-12-04", "eta_p50": "2026-12-03", "confidence": 0.9, "provisional": False, "reasons": [],
         "available": 118, "backorder_expected_at": None},
        {"sku": "SCARCE-001", "qty": 1, "status": "limited", "warehouse": "gb-north", "ship_by": "2026-12-02",
         "deliver_by": "2026-12-05", "eta_p50": "2026-12-04", "confidence": 0.85, "provisional": False,
         "reasons": [], "available": 3, "backorder_expected_at": None}]}}}}})
def batch_promises(
    batch: PromiseBatch,
    response: Response,
    container: Container = Depends(get_container),
) -> dict:
    """Promises for many SKUs at once (listing pages)."""
    if len(batch.items) > container.settings.promise_max_batch:
        raise InvalidInput(
            f"at most {container.settings.promise_max_batch} items per batch",
            [{"field": "items", "max": container.settings.promise_max_batch, "got": len(batch.items)}],
        )
    engine = promise_service(container).engine
    promises = engine.promises_for([(i.sku, i.qty, i.country, i.postal_code) for i in batch.items])
    _cache_headers(response, container)
    return {"promises": [p.to_dict() for p in promises]}
