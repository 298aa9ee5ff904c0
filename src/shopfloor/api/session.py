"""Signed, expiring session tokens for the browser dashboard.

A token is ``<payload>.<signature>``: the payload is base64url JSON ``{"k": key_id, "sid": ..., "iat": ...,
"exp": ...}`` and
the signature is base64url HMAC-SHA256 of the payload under the server secret. It carries the API key's *id*,
never the key itself, so the cookie is worthless without the server secret and the key can still be revoked.
The random session id ``sid`` is what logout records server-side (``dashboard_sessions_ended``), so a copy of the
cookie stops working once its session was logged out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime


class InvalidSession(Exception):
    """The token is missing, malformed, tampered with or expired. ``reason`` says which (for logs, not users)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    key_id: str
    issued_at: int
    expires_at: int
    session_id: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and verifies session tokens with one secret and a time-to-live (seconds)."""

    def __init__(self, secret: str | bytes, ttl_s: int) -> None:
        if not secret:
            raise ValueError("dashboard_session_secret must not be empty")
        if ttl_s <= 0:
            raise ValueError("dashboard_session_ttl_s must be positive")
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self.ttl_s = int(ttl_s)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, key_id: str, now: datetime) -> str:
        iat = int(now.timestamp())
        body = json.dumps({"k": key_id, "sid": secrets.token_urlsafe(16), "iat": iat, "exp": iat + self.ttl_s},
                          separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str | None, now: datetime) -> Session:
        """The session in ``token``; raises :class:`InvalidSession` unless it is intact and unexpired."""
        if not token:
            raise InvalidSession("missing")
        if len(token) > 4096 or token.count(".") != 1:
            raise InvalidSession("malformed")
        payload, signature = token.split(".")
        try:
            payload.encode("ascii")
            signature.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidSession("malformed") from None
        # Constant-time comparison: the signature is checked before the payload is even decoded.
        if not hmac.compare_digest(self._sign(payload), signature):
            raise InvalidSession("bad_signature")
        try:
            data = json.loads(_unb64(payload))
            session = Session(str(data["k"]), int(data["iat"]), int(data["exp"]), str(data["sid"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidSession("malformed") from None
        if int(now.timestamp()) >= session.expires_at:
            raise InvalidSession("expired")
        return session
