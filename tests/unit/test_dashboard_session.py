"""Dashboard session tokens: signed with HMAC-SHA256, expiring, and useless once altered."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from shopfloor.api.session import InvalidSession, SessionSigner

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def _reason(signer: SessionSigner, token, at=NOW) -> str:
    with pytest.raises(InvalidSession) as info:
        signer.verify(token, at)
    return info.value.reason


def test_issued_session_verifies_until_it_expires():
    signer = SessionSigner("s3cret", ttl_s=600)
    token = signer.issue("key_abc", NOW)
    session = signer.verify(token, NOW + timedelta(seconds=599))
    assert session.key_id == "key_abc"
    assert session.expires_at - session.issued_at == 600
    assert _reason(signer, token, NOW + timedelta(seconds=600)) == "expired"


def test_a_payload_edited_to_another_key_is_rejected():
    signer = SessionSigner("s3cret", ttl_s=600)
    payload, signature = signer.issue("key_abc", NOW).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {"k": "key_root", "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 10**6}).encode()).decode()
    assert _reason(signer, f"{forged.rstrip('=')}.{signature}") == "bad_signature"
    assert _reason(signer, f"{payload}.{signature[:-2]}AA") == "bad_signature"


def test_a_token_signed_with_another_secret_is_rejected():
    token = SessionSigner("other", ttl_s=600).issue("key_abc", NOW)
    assert _reason(SessionSigner("s3cret", ttl_s=600), token) == "bad_signature"


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c", "é.x", "x" * 5000])
def test_missing_or_malformed_tokens_are_rejected(token):
    assert _reason(SessionSigner("s3cret", ttl_s=600), token) in {"missing", "malformed", "bad_signature"}


def test_a_validly_signed_but_garbled_payload_is_rejected_as_malformed():
    signer = SessionSigner("s3cret", ttl_s=600)
    payload = base64.urlsafe_b64encode(b"not json").decode().rstrip("=")
    assert _reason(signer, f"{payload}.{signer._sign(payload)}") == "malformed"


def test_signer_refuses_an_empty_secret_or_ttl():
    with pytest.raises(ValueError):
        SessionSigner("", ttl_s=60)
    with pytest.raises(ValueError):
        SessionSigner("x", ttl_s=0)
