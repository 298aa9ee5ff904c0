"""Outbound webhook subscriptions (admin): endpoints, their delivery log and manual redelivery. Thin: the work is
in ``shopfloor.integrations``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container, build_integrations
from ...integrations import EVENT_TYPES
from ..deps import get_container, require_scope
from ..errors import error_responses

router = APIRouter(tags=["webhooks"])

EndpointId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, examples=["https://example.com/hooks/shopfloor"])
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES), examples=[["order.placed"]])
    description: str | None = Field(default=None, max_length=300)


ENDPOINT_EXAMPLES = {
    "orders": {"summary": "The ERP hears about every paid and cancelled order",
               "value": {"url": "https://erp.example.com/hooks/shopfloor", "events": ["order.paid", "order.cancelled"],
                         "description": "ERP order sync"}},
}

_ENDPOINT = {"id": "we_8b111f25ef6f431c8f2b9f1e746a3cfc", "url": "https://erp.example.com/hooks/shopfloor",
             "events": ["order.cancelled", "order.paid"], "description": "ERP order sync", "status": "active",
             "disabled_reason": None, "failing_since": None, "created_at": "2026-12-01T10:15:00+00:00",
             "updated_at": "2026-12-01T10:15:00+00:00"}
#: The signing secret is shown on creation and rotation only.
CREATED_OUT = {**_ENDPOINT, "secret": "whsec_xcMB80fLAaZd2ypQAYLMns3zjNx0POvL"}
DISABLED_OUT = {**_ENDPOINT, "status": "disabled", "disabled_reason": "disabled by an administrator",
                "updated_at": "2026-12-01T11:00:00+00:00"}
ENABLED_OUT = {**_ENDPOINT, "updated_at": "2026-12-01T11:05:00+00:00"}
ROTATED_OUT = {**_ENDPOINT, "updated_at": "2026-12-01T11:10:00+00:00",
               "secret": "whsec_9aneKsy2wqsExmPr2fGfX+oTsvZ6xH1u"}
#: A delivery the receiver refused once (503) and took five seconds later, then asked again after losing it.
_DELIVERY = {"id": "wd_ca70b1382e7e4d429dba69aa2c1aab34", "endpoint_id": _ENDPOINT["id"],
             "message_id": "msg_evt_01a243f12a54983b113400bf3264b356", "event_type": "order.paid",
             "status": "succeeded", "attempts": 2, "next_attempt_at": None, "last_status_code": 200,
             "last_error": None, "created_at": "2026-12-01T10:15:02+00:00", "updated_at": "2026-12-01T10:15:08+00:00"}
DELIVERIES_OUT = [{**_DELIVERY, "attempt_log": [
    {"attempt": 1, "at": "2026-12-01T10:15:03+00:00", "status_code": 503, "error": None, "duration_ms": 84},
    {"attempt": 2, "at": "2026-12-01T10:15:08+00:00", "status_code": 200, "error": None, "duration_ms": 61}]}]
REDELIVERED_OUT = {**_DELIVERY, "status": "pending", "attempts": 0, "next_attempt_at": "2026-12-01T14:00:00+00:00",
                   "updated_at": "2026-12-01T14:00:00+00:00"}


def _example(value, status: int = 200) -> dict:
    return {status: {"content": {"application/json": {"example": value}}}}


def _subscriptions(c: Container):
    return build_integrations(c)["webhooks.subscriptions"]


@router.post("/v1/webhook-endpoints", status_code=201, responses={
    **_example(CREATED_OUT, 201),
    **error_responses({422: "Unknown event type, or a URL the SSRF guard refuses (field named)."})})
def create_endpoint(body: Annotated[EndpointIn, Body(openapi_examples=ENDPOINT_EXAMPLES)],
                    _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Subscribe a URL to event types. The answer carries the endpoint's ``whsec_`` signing secret, shown once."""
    return _subscriptions(c).create(body.url, body.events, body.description)


@router.get("/v1/webhook-endpoints", responses=_example([_ENDPOINT]))
def list_endpoints(_key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Every subscriber endpoint (without secrets)."""
    return _subscriptions(c).list()


@router.get("/v1/webhook-endpoints/{endpoint_id}", responses=_example(_ENDPOINT))
def get_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                 c: Container = Depends(get_container)):
    return _subscriptions(c).get(endpoint_id)


@router.post("/v1/webhook-endpoints/{endpoint_id}/disable", responses=_example(DISABLED_OUT))
def disable_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                     c: Container = Depends(get_container)):
    """Stop delivering to an endpoint; pending deliveries wait until it is enabled again."""
    return _subscriptions(c).set_status(endpoint_id, active=False)


@router.post("/v1/webhook-endpoints/{endpoint_id}/enable", responses=_example(ENABLED_OUT))
def enable_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                    c: Container = Depends(get_container)):
    return _subscriptions(c).set_status(endpoint_id, active=True)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", responses=_example(ROTATED_OUT))
def rotate_secret(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                  c: Container = Depends(get_container)):
    """A new ``whsec_`` secret (shown once). Until the next rotation every delivery is signed with the new and the
    previous secret, so receivers can move over without missing a delivery."""
    return _subscriptions(c).rotate_secret(endpoint_id)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", responses=_example(DELIVERIES_OUT))
def list_deliveries(endpoint_id: EndpointId,
                    status: Literal["pending", "succeeded", "failed"] | None = Query(default=None),
                    limit: int = Query(default=50, ge=1, le=500),
                    _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """The delivery log, newest first, each delivery with its attempts (status code, error, duration)."""
    return _subscriptions(c).deliveries(endpoint_id, status=status, limit=limit)


@router.post("/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             responses={**_example(REDELIVERED_OUT, 202),
                        **error_responses({409: "The endpoint is disabled, or the delivery is being sent."})})
def redeliver(endpoint_id: EndpointId, delivery_id: EndpointId, response: Response,
              _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Queue a delivery again now (same ``webhook-id``, so receivers still deduplicate)."""
    return _subscriptions(c).redeliver(endpoint_id, delivery_id)
