"""Storefront buy path: checkout and order lookup."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container
from ...domain.errors import DomainError, NotFound
from ...domain.stock import OrderLineRequest
from ...orders.checkout import PlaceOrder, request_fingerprint
from ...store import orders_repo as repo
from ...waitroom import GO, QUEUED, SOLD, UNAVAILABLE
from ..deps import IDENT_PATTERN, Caller, get_container, require_caller, require_scope, single_header
from ..errors import envelope, error_responses
from ..responses import FastJSONResponse

log = logging.getLogger(__name__)

router = APIRouter(tags=["checkout"])

SkuId = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT_PATTERN)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: SkuId
    qty: int = Field(ge=1, le=10_000, strict=True)


class ShipToIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: str = Field(pattern=r"^[A-Za-z]{2}$", examples=["US"])
    postal_code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$", examples=["94107"])
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                              description="Where the confirmation goes.")


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", examples=["tok_ok"])
    customer_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    billing_country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    ship_to: ShipToIn
    payment: PaymentIn


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Unique per purchase attempt. Replaying it with the same body returns the first response.",
    ),
]


QueueToken = Annotated[
    str | None,
    Header(alias="Queue-Token", max_length=512,
           description="The token a queued checkout (429 queued) handed out: repeat the checkout with it to keep "
                       "your place in a hot product's waiting room, or to go ahead once admitted."),
]


CHECKOUT_EXAMPLES = {
    "one line": {
        "summary": "One SKU to a US address",
        "value": {"lines": [{"sku": "A1", "qty": 2}], "ship_to": {"country": "US", "postal_code": "94107"},
                  "payment": {"token": "tok_ok"}},
    },
    "demo basket": {
        "summary": "Two SKUs of the demo catalog to London, with a confirmation mail",
        "value": {"lines": [{"sku": "85123A", "qty": 1}, {"sku": "SCARCE-001", "qty": 5}],
                  "ship_to": {"country": "GB", "postal_code": "EC1A 1BB", "email": "ada@example.com"},
                  "payment": {"token": "tok_ok", "customer_id": "cust-42"}},
    },
}

_PROMISE_LINE = {"status": "in_stock", "warehouse": "gb-south", "ship_by": "2026-12-02", "deliver_by": "2026-12-04",
                 "eta_p50": "2026-12-03", "confidence": 0.9, "provisional": False, "reasons": [],
                 "backorder_expected_at": None}
#: What the "demo basket" example answers: SCARCE-001 is split over both British warehouses (4 + 1 units).
CHECKOUT_CREATED = {
    "order_id": "ord_01a243f0e550e8fad6c1a66f236f7b08", "status": "authorized",
    "lines": [{"sku": "85123A", "qty": 1, "warehouse": "gb-south"},
              {"sku": "SCARCE-001", "qty": 4, "warehouse": "gb-south"},
              {"sku": "SCARCE-001", "qty": 1, "warehouse": "gb-north"}],
    "total": 17790, "currency": "GBP", "split_shipment": True,
    "reservation_expires_at": "2026-12-01T10:30:00+00:00", "created_at": "2026-12-01T10:15:00+00:00",
    "shipping": {"provisional": False, "amount": 495, "currency": "GBP", "days": 3, "carrier": "simcarrier",
                 "service": "ground", "source": "rate_service", "quoted_at": "2026-12-01T10:15:00+00:00"},
    "promise": {"status": "limited", "ship_by": "2026-12-02", "deliver_by": "2026-12-04", "provisional": False,
                "reasons": [],
                "lines": [{"sku": "85123A", "qty": 1, **_PROMISE_LINE, "available": 118},
                          {"sku": "SCARCE-001", "qty": 5, **_PROMISE_LINE, "status": "limited", "available": 8}]},
    "payment": {"state": "authorized", "processor": "primary"},
}

#: ``GET /v1/orders/{order_id}`` for the order above, before the worker captures the payment.
ORDER_EXAMPLE = {
    "order_id": "ord_01a243f0e550e8fad6c1a66f236f7b08", "status": "authorized",
    "lines": [{"sku": "85123A", "qty": 1, "warehouse": "gb-south", "unit_price": 295},
              {"sku": "SCARCE-001", "qty": 4, "warehouse": "gb-south", "unit_price": 3499},
              {"sku": "SCARCE-001", "qty": 1, "warehouse": "gb-north", "unit_price": 3499}],
    "total": 17790, "currency": "GBP", "split_shipment": True,
    "ship_to": {"country": "GB", "postal_code": "EC1A 1BB", "email": "ada@example.com"},
    "payment": {"token": "fp_4540ecda636045a17dab", "token_last4": "k_ok", "state": "approved",
                "attempt_key": "pay_fe699a3051eca4e90000000000000000", "customer_id": "cust-42",
                "outcome": "approved", "processor": "primary", "reference": "pri_a9ae06308f584f999bf0",
                "decline_reason": None, "pending_reason": None, "suspects": [], "cancelling": [],
                "key_exhausted": False,
                "calls": [{"processor": "primary", "operation": "authorize", "outcome": "approved",
                           "latency_ms": 22.4}]},
    "shipping": CHECKOUT_CREATED["shipping"], "promise": CHECKOUT_CREATED["promise"],
    "reservations": [{"sku": "85123A", "warehouse": "gb-south", "qty": 1, "state": "active",
                      "expires_at": "2026-12-01T10:30:00+00:00"},
                     {"sku": "SCARCE-001", "warehouse": "gb-north", "qty": 1, "state": "active",
                      "expires_at": "2026-12-01T10:30:00+00:00"},
                     {"sku": "SCARCE-001", "warehouse": "gb-south", "qty": 4, "state": "active",
                      "expires_at": "2026-12-01T10:30:00+00:00"}],
    "reservation_expires_at": None, "created_at": "2026-12-01T10:15:00+00:00",
    "updated_at": "2026-12-01T10:15:00+00:00",
}

CHECKOUT_ERRORS = error_responses({
    401: "unauthorized: no valid storefront key",
    402: "payment_declined: the processor declined; the stock is released",
    403: "forbidden: the key lacks the storefront scope; queue_token_invalid, queue_token_wrong_product or "
         "queue_token_expired: the Queue-Token is not ours, is for another product, or has lapsed (check out "
         "without it to queue again)",
    409: "out_of_stock (details: sku, requested, available), sold_out (a waiting-room product has no units left), "
         "queue_token_used (the admitted place was used by another purchase), or the same Idempotency-Key is still "
         "in flight",
    413: "payload_too_large: the body is over SHOPFLOOR_HTTP_MAX_BODY_BYTES",
    415: "unsupported_media_type: the body was not sent as application/json",
    422: "validation_error naming the field, unknown_sku, or idempotency_key_reused (same key, other body)",
    429: "queued (details: queue_token, position, eta_s): the product's waiting room holds your place; repeat the "
         "checkout after Retry-After with the header Queue-Token. too_many_requests: a rate limit (details: limit, "
         "retry_after_s) or this server process's SHOPFLOOR_CHECKOUT_MAX_IN_FLIGHT; retry after Retry-After with "
         "the same Idempotency-Key",
    503: "service_unavailable: the order store is unavailable; retry with the same Idempotency-Key",
})


class _InFlight:
    """Checkouts this process is working on (one event loop: a plain counter is enough)."""

    def __init__(self) -> None:
        self.n = 0


@router.post("/v1/checkouts", status_code=201, responses={
    201: {"description": "The order, its reservations' warehouses, the shipping quote and the promise.",
          "content": {"application/json": {"example": CHECKOUT_CREATED}}},
    **CHECKOUT_ERRORS,
})
async def create_checkout(
    body: Annotated[CheckoutIn, Body(openapi_examples=CHECKOUT_EXAMPLES)],
    idempotency_key: IdempotencyKey,
    request: Request,
    queue_token: QueueToken = None,
    key_id: str = Depends(require_scope("storefront")),
    c: Container = Depends(get_container),
):
    """Reserve every line (whole order or nothing), record the order and its outbox event in one transaction.
    A product in a flash sale's waiting room may answer 429 ``queued`` first (see Queue-Token)."""
    single_header(request, "Idempotency-Key")
    single_header(request, "Queue-Token")
    return await run_checkout(body, idempotency_key, key_id, c, queue_token=queue_token,
                              client=request.client.host if request.client else None)


async def run_checkout(body: CheckoutIn, idempotency_key: str, key_id: str, c: Container, *,
                       queue_token: str | None = None, client: str | None = None) -> FastJSONResponse:
    """The checkout behind both entries (this route and :mod:`shopfloor.api.fast_checkout`): the flash-sale gate
    (rate limits, the waiting room, bot watch; see :class:`~shopfloor.waitroom.CheckoutGate`), the per-process
    in-flight limit, then the buy path."""
    gate = c.services.get("checkout_gate")
    if gate is None:
        return await _within_in_flight_limit(body, idempotency_key, key_id, c)
    verdict = await gate.enter([line.sku for line in body.lines], key_id, client, queue_token, idempotency_key,
                               body.payment.token)
    if verdict.kind != GO:
        return refused_answer(verdict)
    try:
        response = await _within_in_flight_limit(body, idempotency_key, key_id, c)
    except DomainError as exc:
        await gate.leave(verdict, exc.status)
        raise
    await gate.leave(verdict, response.status_code)
    return response


def refused_answer(verdict) -> FastJSONResponse:
    """The answer to a checkout the gate refused (also built by :class:`~shopfloor.api.crowd_front.SoldOutShortcut`)."""
    if verdict.kind == QUEUED:
        d = verdict.decision
        return envelope(429, "queued", f"{verdict.sku} is in demand: you are number {d.position} in line; repeat "
                        "the checkout with the header Queue-Token after Retry-After",
                        [{"queue_token": d.token, "position": d.position, "eta_s": d.eta_s}],
                        headers={"Retry-After": str(d.retry_after_s)})
    if verdict.kind == SOLD:
        return envelope(409, "sold_out", f"{verdict.sku} is sold out", [{"sku": verdict.sku, "available": 0}])
    if verdict.kind == UNAVAILABLE:
        log.error("waiting room unavailable for %s", verdict.sku)
        return envelope(503, "service_unavailable", f"the waiting room for {verdict.sku} is unavailable; retry with "
                        "the same Idempotency-Key", [{"sku": verdict.sku}], headers={"Retry-After": "2"})
    refusal = verdict.refusal
    return envelope(429, "too_many_requests", f"rate limit {refusal.limit}: retry after {refusal.retry_after_s} s",
                    refusal.details(), headers={"Retry-After": str(refusal.retry_after_s)})


async def _within_in_flight_limit(body: CheckoutIn, idempotency_key: str, key_id: str,
                                  c: Container) -> FastJSONResponse:
    in_flight = c.services.get("checkout.in_flight")
    if in_flight is None:
        in_flight = c.services["checkout.in_flight"] = _InFlight()
    limit = c.settings.checkout_max_in_flight
    if limit and in_flight.n >= limit:
        return envelope(429, "too_many_requests",
                        f"this server is working on {limit} checkouts; retry with the same Idempotency-Key",
                        [{"max_in_flight": limit}], headers={"Retry-After": "1"})
    in_flight.n += 1
    try:
        return await _checkout(body, idempotency_key, key_id, c)
    finally:
        in_flight.n -= 1


async def _checkout(body: CheckoutIn, idempotency_key: str, key_id: str, c: Container) -> FastJSONResponse:
    payload = body.model_dump()
    cmd = PlaceOrder(
        api_key_id=key_id,
        idempotency_key=idempotency_key,
        request_hash=request_fingerprint(payload),
        lines=tuple(OrderLineRequest(l.sku, l.qty) for l in body.lines),
        country=body.ship_to.country.upper(),
        postal_code=body.ship_to.postal_code.upper(),
        payment={k: v for k, v in payload["payment"].items() if v is not None},
        extra={"email": body.ship_to.email} if body.ship_to.email else {},
    )
    buy_path = c.services["buy_path"]
    result = await buy_path.checkout(cmd)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return FastJSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.get("/v1/orders/{order_id}", responses={200: {"content": {"application/json": {"example": ORDER_EXAMPLE}}}})
def get_order(
    order_id: Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")],
    caller: Caller = Depends(require_caller("storefront", "admin")),
    c: Container = Depends(get_container),
):
    """An order with its lines, reservations, payment state, shipping quote and promise. A storefront key sees
    only the orders placed with it (another's answer 404, as if they did not exist); an admin key sees all."""
    with c.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        order = repo.get_order(conn, order_id, placed_by=None if caller.is_admin else caller.key_id)
    if order is None:
        raise NotFound(f"no order {order_id}", [{"field": "order_id", "order_id": order_id}])
    return order

