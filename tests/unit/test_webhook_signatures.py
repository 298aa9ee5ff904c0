"""HMAC-SHA256 webhook signatures and delivery error classification."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from shopfloor.domain.clock import FixedClock
from shopfloor.orders.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WarehouseWebhook,
    WebhookDeliveryError,
    WebhookSignatureError,
    sign_payload,
    verify_signature,
)

NOW = 1_790_000_000
BODY = b'{"order_id":"o1","lines":[]}'


def test_a_signature_verifies_with_the_same_secret_and_body():
    header = sign_payload("s3cret", BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature("s3cret", BODY, header, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    "body,secret,reason",
    [(BODY.replace(b"o1", b"o2"), "s3cret", "signature mismatch"), (BODY, "other", "signature mismatch")],
)
def test_tampered_bodies_and_wrong_secrets_are_rejected(body, secret, reason):
    header = sign_payload("s3cret", BODY, NOW)
    with pytest.raises(WebhookSignatureError, match=reason):
        verify_signature(secret, body, header, now=NOW)


def test_a_tampered_timestamp_breaks_the_signature():
    header = sign_payload("s3cret", BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_signature("s3cret", BODY, header, now=NOW)


def test_stale_and_future_timestamps_outside_the_tolerance_are_rejected():
    header = sign_payload("s3cret", BODY, NOW)
    verify_signature("s3cret", BODY, header, now=NOW + 300, tolerance_s=300)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature("s3cret", BODY, header, now=NOW + 301, tolerance_s=300)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature("s3cret", BODY, header, now=NOW - 301, tolerance_s=300)


@pytest.mark.parametrize("header", [None, "", "v1=abc", f"t={NOW}", "t=soon,v1=abc"])
def test_missing_or_malformed_headers_are_rejected(header):
    with pytest.raises(WebhookSignatureError):
        verify_signature("s3cret", BODY, header, now=NOW)


def test_rotation_accepts_any_listed_secret():
    header = sign_payload("new", BODY, NOW)
    assert verify_signature(["old", "new"], BODY, header, now=NOW) == NOW


def _hook(handler):
    clock = FixedClock(datetime.fromtimestamp(NOW, timezone.utc))
    return WarehouseWebhook("http://warehouse.test/hook", "s3cret", clock,
                            client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_delivery_sends_a_verifiable_signature_and_the_event_id():
    seen = {}

    def handler(request: httpx.Request):
        seen["ts"] = verify_signature("s3cret", request.content, request.headers[SIGNATURE_HEADER], now=NOW)
        seen["event"] = request.headers[EVENT_ID_HEADER]
        seen["body"] = json.loads(request.content)
        return httpx.Response(202)

    assert _hook(handler).deliver("evt-1", {"order_id": "o1"}) == 202
    assert seen == {"ts": NOW, "event": "evt-1", "body": {"order_id": "o1"}}


@pytest.mark.parametrize("status,retryable", [(500, True), (503, True), (429, True), (408, True), (400, False), (401, False)])
def test_failed_deliveries_say_whether_a_retry_can_help(status, retryable):
    with pytest.raises(WebhookDeliveryError) as err:
        _hook(lambda r: httpx.Response(status)).deliver("e", {})
    assert err.value.retryable is retryable and err.value.status_code == status


def test_transport_errors_are_retryable_and_the_secret_never_shows():
    def handler(request):
        raise httpx.ConnectError("refused")

    hook = _hook(handler)
    with pytest.raises(WebhookDeliveryError) as err:
        hook.deliver("e", {})
    assert err.value.retryable
    assert "s3cret" not in repr(hook) and "s3cret" not in str(err.value)
