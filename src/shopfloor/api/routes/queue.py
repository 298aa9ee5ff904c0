"""Flash-sale waiting room: where a queued shopper stands."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from ...bootstrap import Container
from ...domain.errors import NotFound
from ..deps import get_container, require_scope
from ..errors import error_responses
from ..responses import FastJSONResponse

router = APIRouter(tags=["checkout"])


class QueueStatusOut(BaseModel):
    state: Literal["waiting", "admitted", "sold_out", "expired"] = Field(
        description="waiting: keep polling (or repeat the checkout with Queue-Token); admitted: check out now with "
                    "Queue-Token; sold_out: no units left; expired: the token or the admitted place lapsed.")
    position: int | None = Field(description="Shoppers ahead, counting you (0 once admitted); before the sale "
                                             "opens: the arrivals so far, shuffled at the opening.")
    eta_s: float | None = Field(description="Estimated seconds until admission (before the opening: until it).")


#: A shopper in the flash sale's line, and the tower's view of that line.
QUEUE_STATUS_EXAMPLE = {"state": "waiting", "position": 42, "eta_s": 18.5}
WAITROOM_EXAMPLE = {
    "queue_status_in_protocol": {"answered": 5210, "held": 37},
    "products": [{"sku": "FLASH-001", "arrivals": 300, "admitted": 64, "waiting": 236, "in_flight": 14,
                  "remaining": 12, "sold_out_seen_at": None, "held_told_sold_out": 0, "sold_out_in_protocol": 0,
                  "queued_in_protocol": 180}],
}


@router.get("/v1/queue/{token}", response_model=QueueStatusOut,
            responses={200: {"content": {"application/json": {"example": QUEUE_STATUS_EXAMPLE}}},
                       **error_responses({403: "queue_token_invalid: not a token this store issued",
                                          404: "not_found: no product is in a waiting room",
                                          429: "too_many_requests: the open-read rate limit of this address"})})
async def queue_status(
    token: Annotated[str, Path(min_length=3, max_length=512, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")],
    wait: Annotated[float, Query(ge=0, le=60, description="Hold the answer up to this many seconds (at most "
                                                           "SHOPFLOOR_WAITROOM_MAX_HOLD_S) until the state changes: "
                                                           "admitted or sold out is answered the moment it happens.")
                    ] = 0.0,
    c: Container = Depends(get_container),
):
    """A queue token's state, position and estimated wait. The token is the credential: no API key needed.

    **Long poll**: with ``wait=S`` (seconds, at most ``SHOPFLOOR_WAITROOM_MAX_HOLD_S``, default 25) the answer is
    held until the token's state changes -- ``admitted`` when its place is reached, ``sold_out`` the moment the
    product sells out (every held request of the product is answered at once), ``expired`` -- or until S passes,
    then ``waiting`` with the current position. One held request per shopper replaces a poll every Retry-After.
    Each server process holds at most ``SHOPFLOOR_WAITROOM_MAX_HELD`` such requests; past that a request is
    answered at once with its current state and a ``Retry-After`` header: ask again after that many seconds."""
    room = c.services.get("waitroom")
    if room is None:
        raise NotFound("no product is in a waiting room", [{"field": "token"}])
    answer = await room.hold(token, min(wait, c.settings.waitroom_max_hold_s))
    if answer.retry_after_s is None:
        return answer.status
    return FastJSONResponse(answer.status, headers={"Retry-After": str(answer.retry_after_s)})


@router.get("/v1/tower/waitroom", tags=["tower"],
            responses={200: {"content": {"application/json": {"example": WAITROOM_EXAMPLE}}}})
async def waitroom_status(c: Container = Depends(get_container), _key: str = Depends(require_scope("admin"))) -> dict:
    """Each guarded product's queue: arrivals so far, admitted, waiting (queue length), admitted and still checking
    out, units left, when this process first read the product as sold out (unix seconds, or null) and how many
    held status requests it then answered ``sold_out`` at once, and how many new arrivals' checkouts of the
    sold-out product it answered in its HTTP protocol (``sold_out_in_protocol``), and how many queued or rate-limited
    checkouts it answered there (``queued_in_protocol``); for the process, how many queue status requests it answered
    (``answered``) and held (``held``) in its HTTP protocol (``queue_status_in_protocol``). Admission and refusal rates: ``shopfloor_waitroom_decisions_total`` and
    ``shopfloor_rate_limit_refusals_total`` on /metrics; bot patterns raise alerts (``/v1/tower/alerts``)."""
    room = c.services.get("waitroom")
    if room is None:
        return {"queue_status_in_protocol": {"answered": 0, "held": 0}, "products": []}
    stats = await room.stats()
    shortcut = c.services.get("waitroom.sold_out_shortcut")
    early = {} if shortcut is None else shortcut.answered
    queued = {} if shortcut is None else shortcut.queued
    status = c.services.get("waitroom.status_shortcut")
    in_protocol = {"answered": 0, "held": 0} if status is None else {"answered": status.answered, "held": status.held}
    return {"queue_status_in_protocol": in_protocol,
            "products": [{"sku": sku, "arrivals": st["arrivals"], "admitted": st["admitted"],
                          "waiting": max(0, st["arrivals"] - st["admitted"]), "in_flight": st["in_flight"],
                          "remaining": room.remaining(sku), "sold_out_seen_at": room.sold_out_seen_at.get(sku),
                          "held_told_sold_out": room.held_told_sold_out.get(sku, 0),
                          "sold_out_in_protocol": early.get(sku, 0), "queued_in_protocol": queued.get(sku, 0)}
                         for sku, st in stats.items()]}
