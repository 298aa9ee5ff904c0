"""Outbound webhook subscriptions (admin): endpoints, their delivery log and manual redelivery. Thin: the work is
in ``shopfloor.integrations``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
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


def _subscriptions(c: Container):
    return build_integrations(c)["webhooks.subscriptions"]


@router.post("/v1/webhook-endpoints", status_code=201,
             responses=error_responses({422: "Unknown event type, or a URL the SSRF guard refuses (field named)."}))
def create_endpoint(body: EndpointIn, _key: str = Depends(require_scope("admin")),
                    c: Container = Depends(get_container)):
    """Subscribe a URL to event types. The answer carries the endpoint's ``whsec_`` signing secret, shown once."""
    return _subscriptions(c).create(body.url, body.events, body.description)


@router.get("/v1/webhook-endpoints")
def list_endpoints(_key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Every subscriber endpoint (without secrets)."""
    return _subscriptions(c).list()


@router.get("/v1/webhook-endpoints/{endpoint_id}")
def get_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                 c: Container = Depends(get_container)):
    return _subscriptions(c).get(endpoint_id)


@router.post("/v1/webhook-endpoints/{endpoint_id}/disable")
def disable_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                     c: Container = Depends(get_container)):
    """Stop delivering to an endpoint; pending deliveries wait until it is enabled again."""
    return _subscriptions(c).set_status(endpoint_id, active=False)


@router.post("/v1/webhook-endpoints/{endpoint_id}/enable")
def enable_endpoint(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                    c: Container = Depends(get_container)):
    return _subscriptions(c).set_status(endpoint_id, active=True)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret")
def rotate_secret(endpoint_id: EndpointId, _key: str = Depends(require_scope("admin")),
                  c: Container = Depends(get_container)):
    """A new ``whsec_`` secret (shown once). Until the next rotation every delivery is signed with the new and the
    previous secret, so receivers can move over without missing a delivery."""
    return _subscriptions(c).rotate_secret(endpoint_id)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries")
def list_deliveries(endpoint_id: EndpointId,
                    status: Literal["pending", "succeeded", "failed"] | None = Query(default=None),
                    limit: int = Query(default=50, ge=1, le=500),
                    _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """The delivery log, newest first, each delivery with its attempts (status code, error, duration)."""
    return _subscriptions(c).deliveries(endpoint_id, status=status, limit=limit)


@router.post("/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             responses=error_responses({409: "The endpoint is disabled, or the delivery is being sent."}))
def redeliver(endpoint_id: EndpointId, delivery_id: EndpointId, response: Response,
              _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Queue a delivery again now (same ``webhook-id``, so receivers still deduplicate)."""
    return _subscriptions(c).redeliver(endpoint_id, delivery_id)
