"""Outbound warehouse-handoff webhook, signed as the Standard Webhooks specification says.

Headers (https://www.standardwebhooks.com):

* ``webhook-id``: the event id, the same on every retry (receivers deduplicate on it);
* ``webhook-timestamp``: unix seconds of this delivery attempt;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"``; several space-separated
  signatures may be present while a secret is rotated.

The id and the timestamp are inside the MAC, so a captured request can neither be replayed under a new id nor
with a new timestamp. Receivers compare with a constant-time compare and reject timestamps outside a tolerance.
A secret written ``whsec_<base64>`` (the specification's format) is base64-decoded; any other string is used as
its UTF-8 bytes. Any Standard Webhooks library verifies what this module sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from ..config import Settings
from ..domain.clock import Clock

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"

Secret = str | bytes | SecretStr


class WebhookSignatureError(Exception):
    """The signature headers are missing, malformed, stale, or do not match."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook signature rejected: {reason}")
        self.reason = reason


class WebhookDeliveryError(Exception):
    """Delivery failed. ``retryable`` is False for 4xx answers other than 408/429 (retrying will not help)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


def _secret_bytes(secret: Secret) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ webhook secret must be base64 after its prefix") from None
    return secret.encode()


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _as_list(secrets: Secret | Sequence[Secret]) -> list[Secret]:
    return [secrets] if isinstance(secrets, (str, bytes, SecretStr)) else list(secrets)


def sign_payload(secrets: Secret | Sequence[Secret], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for ``body`` sent as ``msg_id`` at ``timestamp`` (unix seconds): one
    ``v1,<base64>`` per secret, space-separated (several while a secret is rotated)."""
    return " ".join(f"v1,{_mac(_secret_bytes(s), msg_id, timestamp, body)}" for s in _as_list(secrets))


def signed_headers(secrets: Secret | Sequence[Secret], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery."""
    return {EVENT_ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_payload(secrets, msg_id, timestamp, body)}


def verify_signature(
    secrets: Secret | Sequence[Secret],
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    now: int,
    tolerance_s: int = 300,
) -> int:
    """Check a delivery's headers against ``body``; returns the signed timestamp or raises
    :class:`WebhookSignatureError`. ``headers`` is any mapping with the three ``webhook-*`` headers (an httpx or
    Starlette headers object, or a plain dict with lower-case names). ``secrets`` may list several accepted
    secrets (rotation)."""
    headers = headers or {}
    msg_id = headers.get(EVENT_ID_HEADER)
    raw_ts = headers.get(TIMESTAMP_HEADER)
    header = headers.get(SIGNATURE_HEADER)
    if not msg_id or not raw_ts or not header:
        raise WebhookSignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise WebhookSignatureError("malformed timestamp") from None
    candidates = [sig for version, _, sig in (part.partition(",") for part in header.split(" ") if part)
                  if version == "v1" and sig]
    if not candidates:
        raise WebhookSignatureError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise WebhookSignatureError("timestamp outside tolerance")
    for secret in _as_list(secrets):
        expected = _mac(_secret_bytes(secret), msg_id, timestamp, body).encode()
        if any(hmac.compare_digest(expected, c.encode()) for c in candidates):
            return timestamp
    raise WebhookSignatureError("signature mismatch")


class WarehouseWebhook:
    """POSTs signed JSON to the warehouse. The event id travels in a header so the receiver can dedupe."""

    def __init__(
        self,
        url: str,
        secret: Secret | Sequence[Secret],
        clock: Clock,
        *,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        # Several secrets: every delivery carries one signature per secret (sign with the new and the old one
        # while receivers move over). Each is checked up front, so a malformed one fails at start-up.
        self._secrets = [_secret_bytes(s) for s in _as_list(secret)]
        if not self._secrets:
            raise ValueError("a webhook needs at least one signing secret")
        self._clock = clock
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s))
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"WarehouseWebhook(url={self.url!r}, secret=***)"

    @staticmethod
    def encode(payload: Mapping[str, Any]) -> bytes:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()

    def deliver(self, event_id: str, payload: Mapping[str, Any]) -> int:
        """Send one event; returns the HTTP status or raises :class:`WebhookDeliveryError`."""
        body = self.encode(payload)
        ts = int(self._clock.now().timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": "shopfloor-webhook/2",
                   **signed_headers(self._secrets, event_id, ts, body)}
        try:
            resp = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("warehouse webhook to %s failed: %s", self.url, type(exc).__name__)
            raise WebhookDeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if 200 <= resp.status_code < 300:
            return resp.status_code
        retryable = resp.status_code >= 500 or resp.status_code in (408, 429)
        raise WebhookDeliveryError(
            f"warehouse answered {resp.status_code}", retryable=retryable, status_code=resp.status_code
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def build_warehouse_webhook(settings: Settings, clock: Clock) -> WarehouseWebhook | None:
    """The configured webhook, or ``None`` when ``warehouse_webhook_url`` is unset (handoff stays table-only)."""
    if not settings.warehouse_webhook_url:
        return None
    if settings.warehouse_webhook_secret is None:
        raise ValueError("warehouse_webhook_secret is required when warehouse_webhook_url is set")
    return WarehouseWebhook(
        settings.warehouse_webhook_url,
        [settings.warehouse_webhook_secret, *settings.warehouse_webhook_rotation_secrets],
        clock,
        timeout_s=settings.warehouse_webhook_timeout_s,
    )
