"""Outbound warehouse-handoff webhook, signed with HMAC-SHA256.

Header ``Shopfloor-Signature: t=<unix seconds>,v1=<hex hmac>`` where the MAC covers ``"<t>." + body``; several
``v1=`` entries may be present while a secret is rotated. Receivers check the MAC with a constant-time compare
and reject timestamps outside a tolerance, which stops replays of captured requests.
"""

from __future__ import annotations

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

SIGNATURE_HEADER = "Shopfloor-Signature"
EVENT_ID_HEADER = "Shopfloor-Event-Id"


class WebhookSignatureError(Exception):
    """The signature header is missing, malformed, stale, or does not match."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook signature rejected: {reason}")
        self.reason = reason


class WebhookDeliveryError(Exception):
    """Delivery failed. ``retryable`` is False for 4xx answers other than 408/429 (retrying will not help)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


def _secret_bytes(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret if isinstance(secret, bytes) else secret.encode()


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_payload(secret: str | bytes | SecretStr, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(_secret_bytes(secret), timestamp, body)}"


def verify_signature(
    secrets: str | bytes | SecretStr | Sequence[str | bytes | SecretStr],
    body: bytes,
    header: str | None,
    *,
    now: int,
    tolerance_s: int = 300,
) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp or raises :class:`WebhookSignatureError`.

    ``secrets`` may list several accepted secrets (rotation).
    """
    if not header:
        raise WebhookSignatureError("missing signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError("malformed timestamp") from None
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise WebhookSignatureError("timestamp outside tolerance")
    if isinstance(secrets, (str, bytes, SecretStr)):
        secrets = [secrets]
    for secret in secrets:
        expected = _mac(_secret_bytes(secret), timestamp, body)
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return timestamp
    raise WebhookSignatureError("signature mismatch")


class WarehouseWebhook:
    """POSTs signed JSON to the warehouse. The event id travels in a header so the receiver can dedupe."""

    def __init__(
        self,
        url: str,
        secret: str | SecretStr,
        clock: Clock,
        *,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
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
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_payload(self._secret, body, ts),
            EVENT_ID_HEADER: event_id,
            "User-Agent": "shopfloor-webhook/1",
        }
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
        settings.warehouse_webhook_secret,
        clock,
        timeout_s=settings.warehouse_webhook_timeout_s,
    )
