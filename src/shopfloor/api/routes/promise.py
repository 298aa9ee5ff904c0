"""Promise and fulfillment-event routes. Thin: validation here, the work in shopfloor.promise."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...bootstrap import Container
from ...domain.errors import InvalidInput
from ...fulfillment.stats import FulfillmentEvent
from ...promise.service import promise_service
from ..deps import get_container, require_scope
from ..fields import UtcDatetime

router = APIRouter()

_ID = r"^[A-Za-z0-9_.:\-/]+$"
#: Most items one anonymous ``POST /v1/promises`` may carry (a listing page shows far fewer).
PROMISE_BATCH_HARD_MAX = 200


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=120, pattern=_ID)
    order_id: str = Field(min_length=1, max_length=120, pattern=_ID)
    type: Literal["approved", "picked", "packed", "handed_to_carrier", "delivered", "exception", "returned"]
    at: UtcDatetime
    warehouse: str = Field(min_length=1, max_length=64)
    carrier: str | None = Field(default=None, min_length=1, max_length=64)
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    postal_code: str | None = Field(default=None, min_length=1, max_length=16)
    region: str | None = Field(default=None, min_length=1, max_length=64)
    placed_at: UtcDatetime | None = None
    origin_region: str | None = Field(default=None, min_length=1, max_length=64)
    # ``returned`` events only: what came back, why, and whether it goes back on hand after inspection.
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    qty: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    reason: Literal["fit", "quality", "not_as_described", "damaged", "late", "other"] | None = None
    restock: bool | None = None

    @model_validator(mode="after")
    def _destination(self) -> "EventIn":
        # A return comes back to a warehouse; it needs no destination.
        if self.type != "returned" and self.country is None and self.region is None:
            raise ValueError("an event needs a destination: country (with postal_code) or region")
        return self

    def missing_return_fields(self) -> list[str]:
        """Fields a ``returned`` event lacks (none for other types)."""
        if self.type != "returned":
            return []
        return [name for name in ("sku", "qty", "reason") if getattr(self, name) is None]


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
    model_config = ConfigDict(extra="forbid")
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


@router.post("/v1/fulfillment/events", response_model=IngestOut, tags=["fulfillment"])
def ingest_events(
    batch: EventBatch,
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("ingest", "admin")),
) -> IngestOut:
    """Fulfillment events, batched. Idempotent by ``event_id``; any order of arrival."""
    if len(batch.events) > container.settings.fulfillment_max_batch:
        raise InvalidInput(
            f"at most {container.settings.fulfillment_max_batch} events per batch",
            [{"field": "events", "max": container.settings.fulfillment_max_batch, "got": len(batch.events)}],
        )
    settings = container.settings
    now = container.clock.now()
    latest = now + timedelta(hours=settings.fulfillment_max_future_h)
    earliest = now - timedelta(days=settings.fulfillment_max_age_days)
    for i, e in enumerate(batch.events):
        missing = e.missing_return_fields()
        if missing:
            raise InvalidInput(
                f"events.{i}.{missing[0]}: a returned event needs {', '.join(missing)}",
                [{"field": f"events.{i}.{name}", "event_id": e.event_id, "reason": "required for type returned"}
                 for name in missing])
        for name in ("at", "placed_at"):
            when = getattr(e, name)
            if when is not None and when > latest:
                raise InvalidInput(
                    f"events.{i}.{name}: {when.isoformat()} is in the future (more than "
                    f"{settings.fulfillment_max_future_h:g} h ahead of the server's clock)",
                    [{"field": f"events.{i}.{name}", "event_id": e.event_id, "latest": latest.isoformat()}])
            if when is not None and when < earliest:
                raise InvalidInput(
                    f"events.{i}.{name}: {when.isoformat()} is too far in the past (more than "
                    f"{settings.fulfillment_max_age_days:g} days before the server's clock; "
                    f"see fulfillment_max_age_days)",
                    [{"field": f"events.{i}.{name}", "event_id": e.event_id, "earliest": earliest.isoformat()}])
    events = [FulfillmentEvent(**e.model_dump()) for e in batch.events]
    result = promise_service(container).ingest(events)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.get("/v1/promise", response_model=PromiseOut, tags=["promise"])
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


@router.post("/v1/promises", response_model=PromiseBatchOut, tags=["promise"])
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
