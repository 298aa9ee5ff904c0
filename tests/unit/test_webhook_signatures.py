"""Standard Webhooks signatures (``{id}.{timestamp}.{body}``, ``v1,<base64>``) and delivery error classification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import httpx
import pytest

from shopfloor.domain.clock import FixedClock
from shopfloor.orders.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WarehouseWebhook,
    WebhookDeliveryError,
    WebhookSignatureError,
    sign_payload,
    signed_headers,
    verify_signature,
)

NOW = 1_790_000_000
BODY = b'{"order_id":"o1","lines":[]}'


def _headers(secret="s3cret", msg_id="evt_1", ts=NOW, body=BODY):
    return signed_headers(secret, msg_id, ts, body)


def test_the_published_standard_webhooks_test_vector_reproduces_exactly():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign_payload(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_covers_the_id_the_timestamp_and_the_body():
    expected = base64.b64encode(hmac.new(b"s3cret", f"evt_1.{NOW}.".encode() + BODY, hashlib.sha256).digest())
    headers = _headers()
    assert headers == {EVENT_ID_HEADER: "evt_1", TIMESTAMP_HEADER: str(NOW),
                       SIGNATURE_HEADER: f"v1,{expected.decode()}"}
    assert verify_signature("s3cret", BODY, headers, now=NOW + 10) == NOW


def test_a_captured_request_replayed_under_a_new_id_is_rejected():
    headers = {**_headers(), EVENT_ID_HEADER: "evt_2"}
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_signature("s3cret", BODY, headers, now=NOW)


@pytest.mark.parametrize("body,secret", [(BODY.replace(b"o1", b"o2"), "s3cret"), (BODY, "other")])
def test_tampered_bodies_and_wrong_secrets_are_rejected(body, secret):
    with pytest.raises(WebhookSignatureError, match="signature mismatch"):
        verify_signature(secret, body, _headers(), now=NOW)


def test_a_tampered_timestamp_breaks_the_signature():
    headers = {**_headers(), TIMESTAMP_HEADER: str(NOW + 1)}
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_signature("s3cret", BODY, headers, now=NOW)


def test_stale_and_future_timestamps_outside_the_tolerance_are_rejected():
    verify_signature("s3cret", BODY, _headers(), now=NOW + 300, tolerance_s=300)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature("s3cret", BODY, _headers(), now=NOW + 301, tolerance_s=300)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature("s3cret", BODY, _headers(), now=NOW - 301, tolerance_s=300)


@pytest.mark.parametrize("change", [
    {SIGNATURE_HEADER: None}, {EVENT_ID_HEADER: None}, {TIMESTAMP_HEADER: None}, {TIMESTAMP_HEADER: "soon"},
    {SIGNATURE_HEADER: "v2,abc"}, {SIGNATURE_HEADER: "abc"}, {SIGNATURE_HEADER: "v1,"},
])
def test_missing_or_malformed_headers_are_rejected(change):
    headers = {k: v for k, v in {**_headers(), **change}.items() if v is not None}
    with pytest.raises(WebhookSignatureError):
        verify_signature("s3cret", BODY, headers, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify_signature("s3cret", BODY, None, now=NOW)


def test_rotation_signs_with_every_secret_and_accepts_any_listed_one():
    headers = signed_headers(["new", "old"], "evt_1", NOW, BODY)
    assert len(headers[SIGNATURE_HEADER].split(" ")) == 2
    assert verify_signature("old", BODY, headers, now=NOW) == NOW  # a receiver not yet moved over
    assert verify_signature("new", BODY, headers, now=NOW) == NOW
    assert verify_signature(["old", "new"], BODY, _headers("new"), now=NOW) == NOW


def test_a_whsec_secret_must_be_base64():
    with pytest.raises(ValueError, match="base64"):
        sign_payload("whsec_not base64!", "evt_1", NOW, BODY)


def _hook(handler, secret="s3cret"):
    clock = FixedClock(datetime.fromtimestamp(NOW, timezone.utc))
    return WarehouseWebhook("http://warehouse.test/hook", secret, clock,
                            client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_delivery_sends_verifiable_standard_webhooks_headers():
    seen = {}

    def handler(request: httpx.Request):
        seen["ts"] = verify_signature("s3cret", request.content, request.headers, now=NOW)
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
