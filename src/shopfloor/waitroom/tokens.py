"""Signed queue tokens: a shopper's place in one product's waiting room.

A token is ``<payload>.<signature>``, both base64url. The payload names the product, the shopper's ticket (``p``
for an arrival before the sale opened, ``q`` after) and when the token expires; the signature is HMAC-SHA256 over
the payload with the server's secret, compared in constant time. A token cannot be forged without the secret, and
it cannot be moved to another product because the product is inside what is signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from ..domain.errors import DomainError

PRE_OPEN = "p"
AFTER_OPEN = "q"
_MAX_TOKEN_CHARS = 512


class QueueTokenInvalid(DomainError):
    code = "queue_token_invalid"
    status = 403


class QueueTokenWrongProduct(DomainError):
    code = "queue_token_wrong_product"
    status = 403


@dataclass(frozen=True)
class QueueTicket:
    sku: str
    phase: str  # PRE_OPEN or AFTER_OPEN
    number: int  # arrival number within the phase, from 0
    expires_at: int  # unix seconds

    def expired(self, now_s: float) -> bool:
        return now_s >= self.expires_at


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class QueueTokenCodec:
    """Issues and reads queue tokens. ``secret``: at least 16 bytes, the same in every server process."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 16:
            raise ValueError("the queue token secret must be at least 16 bytes")
        if ttl_s < 1:
            raise ValueError("ttl_s must be >= 1")
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def issue(self, sku: str, phase: str, number: int, now_s: float) -> str:
        if phase not in (PRE_OPEN, AFTER_OPEN) or number < 0 or "|" in sku:
            raise ValueError("bad ticket")
        payload = f"{sku}|{phase}{number}|{int(now_s) + self.ttl_s}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def read(self, token: str) -> QueueTicket:
        """The ticket inside ``token`` (expired or not: the caller decides); QueueTokenInvalid when the token was not
        issued with this secret or is malformed."""
        bad = QueueTokenInvalid("Queue-Token: not a queue token issued by this store",
                                [{"field": "Queue-Token"}])
        if not token or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
            raise bad
        head, sig = token.split(".")
        try:
            payload, signature = _unb64(head), _unb64(sig)
        except (ValueError, TypeError):
            raise bad from None
        if not hmac.compare_digest(self._sign(payload), signature):
            raise bad
        try:
            sku, ticket, expires = payload.decode().split("|")
            phase, number = ticket[0], int(ticket[1:])
            ticket_out = QueueTicket(sku, phase, number, int(expires))
        except (ValueError, IndexError, UnicodeDecodeError):
            raise bad from None
        if phase not in (PRE_OPEN, AFTER_OPEN) or number < 0:
            raise bad
        return ticket_out

    def read_for(self, token: str, sku: str) -> QueueTicket:
        """Like :meth:`read`, and the token must have been issued for ``sku``."""
        ticket = self.read(token)
        if not hmac.compare_digest(ticket.sku.encode(), sku.encode()):
            raise QueueTokenWrongProduct(
                f"Queue-Token: this token holds a place in the queue of another product, not {sku}",
                [{"field": "Queue-Token", "sku": sku}])
        return ticket
