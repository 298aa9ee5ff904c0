"""Admin endpoints for payments: fault injection into the simulated services, processor order, ledgers, health.

Thin: validation by pydantic models, work done by ``container.services["payments"]`` (a ``PaymentsService``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, StringConstraints

from ...bootstrap import Container
from ...domain.errors import Conflict, DomainError, InvalidInput, NotFound
from ...orders.payments_service import PaymentsService
from ...simulators import RATES_SERVICE, FaultConfig, FaultPatch
from ..deps import get_container, require_scope

router = APIRouter(prefix="/v1/admin", tags=["payments admin"])

ProcessorName = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")]
OrderEntry = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class PaymentsUnavailable(DomainError):
    code = "payments_unavailable"
    status = 503


def get_payments(container: Container = Depends(get_container)) -> PaymentsService:
    svc = container.services.get("payments")
    if svc is None:
        raise PaymentsUnavailable("the payments service is not configured in this process")
    return svc


def _known(svc: PaymentsService, name: str) -> str:
    if name not in svc.processor_names():
        raise NotFound(
            f"unknown processor: {name}",
            [{"field": "name", "value": name, "known": svc.processor_names()}],
        )
    return name


def _set_faults(svc: PaymentsService, name: str, patch: FaultPatch) -> FaultConfig:
    try:
        return svc.set_faults(name, patch)
    except LookupError as exc:
        raise Conflict(str(exc), [{"field": "name", "value": name}]) from exc


class ProcessorOrder(BaseModel):
    order: list[str]


@router.put("/processors/order", response_model=ProcessorOrder)
def put_processor_order(
    names: Annotated[list[OrderEntry], Body(min_length=1, max_length=20)],
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> dict[str, Any]:
    """Reorder the processors (shared by every server process within the cache TTL)."""
    known = svc.processor_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"unknown processor(s): {', '.join(unknown)}",
            [{"field": "body", "unknown": unknown, "known": known}],
        )
    if len(set(names)) != len(names):
        raise InvalidInput("each processor may appear only once", [{"field": "body", "value": names}])
    return {"order": svc.set_processor_order(names)}


@router.get("/processors")
def get_processors(
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> dict[str, Any]:
    """Order, breaker state, recent window and counters per processor as this server process sees them, plus
    the latest snapshots every process wrote (``instances``)."""
    processors = svc.health()
    if svc.faults is not None:
        for item in processors:
            item["faults"] = svc.get_faults(item["processor"]).model_dump()
    instances = [
        {
            "instance": r["instance"],
            "processor": r["processor"],
            "breaker_state": r["breaker_state"],
            "window_calls": r["window_calls"],
            "window_failure_pct": r["window_failure_pct"],
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in svc.health_store.read(max_age_s=300)
    ]
    return {"order": svc.processor_order(), "processors": processors, "instances": instances}


@router.get("/processors/{name}/faults", response_model=FaultConfig)
def get_processor_faults(
    name: ProcessorName,
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    _known(svc, name)
    try:
        return svc.get_faults(name)
    except LookupError as exc:
        raise Conflict(str(exc)) from exc


@router.put("/processors/{name}/faults", response_model=FaultConfig)
def put_processor_faults(
    name: ProcessorName,
    patch: FaultPatch,
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    """Inject faults into a simulated processor. Omitted fields keep their current value."""
    return _set_faults(svc, _known(svc, name), patch)


@router.put("/rates/faults", response_model=FaultConfig)
def put_rate_faults(
    patch: FaultPatch,
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    """Inject faults into the simulated carrier-rate service."""
    return _set_faults(svc, RATES_SERVICE, patch)


@router.get("/rates/faults", response_model=FaultConfig)
def get_rate_faults(
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    try:
        return svc.get_faults(RATES_SERVICE)
    except LookupError as exc:
        raise Conflict(str(exc)) from exc


@router.get("/processors/{name}/ledger")
def get_processor_ledger(
    name: ProcessorName,
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> list[dict[str, Any]]:
    """Every charge the simulated processor holds."""
    return svc.ledger(_known(svc, name))
