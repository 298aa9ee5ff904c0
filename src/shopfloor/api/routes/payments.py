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


PROCESSOR_ORDER_EXAMPLES = {
    "fail over": {"summary": "Send payments to the secondary processor first", "value": ["secondary", "primary"]},
}
FAULT_PATCH_EXAMPLES = {
    "outage": {"summary": "Take the processor down: every call fails", "value": {"down": True}},
    "flaky": {"summary": "A quarter of calls fail, the rest are slow",
              "value": {"error_rate": 0.25, "latency_ms": 800}},
    "recovered": {"summary": "Back to normal", "value": {"down": False, "error_rate": 0.0, "latency_ms": 20}},
}
RATE_FAULT_EXAMPLES = {
    "slow carrier API": {"summary": "Carrier quotes take 800 ms and one in ten times out",
                         "value": {"latency_ms": 800, "timeout_rate": 0.1}},
}

#: What the routes answer (``FAULTS_OUT``: after the "outage" patch).
FAULTS_OUT = {"latency_ms": 20.0, "latency_jitter": 0.25, "decline_rate": 0.0, "error_rate": 0.0, "timeout_rate": 0.0,
              "lost_response_rate": 0.0, "down": True}
_NO_FAULTS = {**FAULTS_OUT, "down": False}
PROCESSORS_OUT = {
    "order": ["primary", "secondary"],
    "processors": [
        {"processor": "primary", "position": 0, "breaker_state": "closed", "window_calls": 120, "window_failures": 3,
         "window_failure_pct": 2.5,
         "counters": {"authorize:approved": 114, "authorize:declined": 3, "authorize:unknown": 3},
         "faults": _NO_FAULTS},
        {"processor": "secondary", "position": 1, "breaker_state": "closed", "window_calls": 0, "window_failures": 0,
         "window_failure_pct": 0.0, "counters": {}, "faults": _NO_FAULTS}],
    "instances": [
        {"instance": "web-1:7449:5bec3b", "processor": "primary", "breaker_state": "closed", "window_calls": 120,
         "window_failure_pct": 2.5, "updated_at": "2026-12-01T10:15:00+00:00"},
        {"instance": "web-1:7449:5bec3b", "processor": "secondary", "breaker_state": "closed", "window_calls": 0,
         "window_failure_pct": 0.0, "updated_at": "2026-12-01T10:15:00+00:00"}],
}
LEDGER_OUT = [
    {"idempotency_key": "pay_fe699a3051eca4e90000000000000000", "order_id": "ord_01a243f0e550e8fad6c1a66f236f7b08",
     "amount": 17790, "currency": "GBP", "authorized": True, "captured": True, "voided": False, "declined": False,
     "capture_requests": 1, "reference": "pri_a9ae06308f584f999bf0"},
]


def _example(value: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": value}}}}


@router.put("/processors/order", response_model=ProcessorOrder,
            responses=_example({"order": ["secondary", "primary"]}))
def put_processor_order(
    names: Annotated[list[OrderEntry], Body(min_length=1, max_length=20, openapi_examples=PROCESSOR_ORDER_EXAMPLES)],
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


@router.get("/processors", responses=_example(PROCESSORS_OUT))
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


@router.get("/processors/{name}/faults", response_model=FaultConfig, responses=_example(_NO_FAULTS))
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


@router.put("/processors/{name}/faults", response_model=FaultConfig, responses=_example(FAULTS_OUT))
def put_processor_faults(
    name: ProcessorName,
    patch: Annotated[FaultPatch, Body(openapi_examples=FAULT_PATCH_EXAMPLES)],
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    """Inject faults into a simulated processor. Omitted fields keep their current value."""
    return _set_faults(svc, _known(svc, name), patch)


@router.put("/rates/faults", response_model=FaultConfig,
            responses=_example({**_NO_FAULTS, "latency_ms": 800.0, "timeout_rate": 0.1}))
def put_rate_faults(
    patch: Annotated[FaultPatch, Body(openapi_examples=RATE_FAULT_EXAMPLES)],
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    """Inject faults into the simulated carrier-rate service."""
    return _set_faults(svc, RATES_SERVICE, patch)


@router.get("/rates/faults", response_model=FaultConfig, responses=_example(_NO_FAULTS))
def get_rate_faults(
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> FaultConfig:
    try:
        return svc.get_faults(RATES_SERVICE)
    except LookupError as exc:
        raise Conflict(str(exc)) from exc


@router.get("/processors/{name}/ledger", responses=_example(LEDGER_OUT))
def get_processor_ledger(
    name: ProcessorName,
    _key: str = Depends(require_scope("admin")),
    svc: PaymentsService = Depends(get_payments),
) -> list[dict[str, Any]]:
    """Every charge the simulated processor holds."""
    return svc.ledger(_known(svc, name))
