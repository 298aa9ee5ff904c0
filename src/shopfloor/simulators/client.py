"""Clients of the simulator process (``shopfloor simulate serve``): a :class:`PaymentProcessor` and a
:class:`RateQuoter` over HTTP, exactly as an adapter for a real gateway would be.

Each thread keeps one HTTP/1.1 keep-alive connection (the standard library's client: the buy path calls from its
worker threads, and a call costs a fraction of what a general-purpose client's does). Every call is bounded by its
``timeout_s`` (``honours_timeout``). A failure to connect means certainly not processed; a timeout or a connection
lost after the request was sent means the outcome is unknown, as with any remote processor.
"""

from __future__ import annotations

import http.client
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..orders.shipping import RateQuote, RateServiceError
from ..payments import (
    AttemptKeyCancelled,
    ChargeStatus,
    ConnectionRefused,
    OutcomeUnknown,
    ProcessorResponse,
    ProcessorTimeout,
    ProcessorUnavailable,
)


class _Transport:
    """Per-thread keep-alive connections to one base URL."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._local = threading.local()

    def request(self, method: str, path: str, body: dict | None, headers: dict[str, str], timeout_s: float
                ) -> tuple[int, Any]:
        """(status, decoded JSON). Raises ``ConnectionRefusedError`` when nothing listens, ``TimeoutError`` after
        ``timeout_s``, ``ConnectionError`` when the connection broke after the request was sent."""
        conn = getattr(self._local, "conn", None)
        payload = orjson.dumps(body) if body is not None else None
        hdrs = {"Content-Type": "application/json", **headers} if payload is not None else headers
        for attempt in (0, 1):
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
            if conn.sock is None:  # new, or closed (a refused connect, a "Connection: close" answer)
                conn.timeout = timeout_s
                conn.connect()  # ConnectionRefusedError propagates: nothing was sent
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock.settimeout(max(timeout_s, 0.001))
            sent = False
            try:
                conn.request(method, self.prefix + path, body=payload, headers=hdrs)
                sent = True
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, orjson.loads(data) if data else None
            except (socket.timeout, TimeoutError):
                self._drop()
                raise TimeoutError(f"no answer within {timeout_s:.3f}s") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                conn = None
                # A kept connection the server had closed while idle: nothing was processed, so send it again.
                if attempt == 0 and (not sent or isinstance(exc, http.client.RemoteDisconnected)):
                    continue
                raise ConnectionError(str(exc)) from exc
        raise ConnectionError("connection lost")  # pragma: no cover - the loop returns or raises

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


class HttpProcessor:
    """A payment processor reached over HTTP (the simulator process's Stripe-like shape)."""

    honours_timeout = True

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self._t = _Transport(base_url)

    def _call(self, method: str, op: str, key: str, body: dict | None, timeout_s: float) -> Any:
        path = f"/v1/processors/{self.name}/{op}"
        try:
            status, doc = self._t.request(method, path, body, {"Idempotency-Key": key}, timeout_s)
        except ConnectionRefusedError as exc:
            raise ConnectionRefused(self.name, f"connection refused: {exc}") from None
        except TimeoutError:
            raise ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s") from None
        except (ConnectionError, OSError) as exc:
            raise OutcomeUnknown(self.name, f"connection lost: {exc}") from None
        if status == 200:
            return doc
        code = (doc or {}).get("error") if isinstance(doc, dict) else None
        message = (doc or {}).get("message", "") if isinstance(doc, dict) else ""
        if code == "connection_refused":
            raise ConnectionRefused(self.name, message)
        if code == "key_cancelled":
            raise AttemptKeyCancelled(self.name, message)
        if code == "timeout":
            raise ProcessorTimeout(self.name, message)
        if status in (502, 503) or code == "unavailable":
            raise ProcessorUnavailable(self.name, message or f"HTTP {status}", status)
        raise OutcomeUnknown(self.name, f"HTTP {status}: {message}")

    def authorize(self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *,
                  timeout_s: float) -> ProcessorResponse:
        doc = self._call("POST", "authorize", idempotency_key, {
            "amount": amount, "currency": currency, "token": token, "order_id": order_id, "timeout_s": timeout_s},
            timeout_s)
        return ProcessorResponse(**doc)

    def capture(self, idempotency_key: str, amount: int, currency: str, *, timeout_s: float) -> ProcessorResponse:
        doc = self._call("POST", "capture", idempotency_key,
                         {"amount": amount, "currency": currency, "timeout_s": timeout_s}, timeout_s)
        return ProcessorResponse(**doc)

    def void(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse:
        return ProcessorResponse(**self._call("POST", "void", idempotency_key, {"timeout_s": timeout_s}, timeout_s))

    def status(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus:
        from urllib.parse import quote

        doc = self._call("GET", f"charges/{quote(idempotency_key, safe='')}?timeout_s={timeout_s}",
                         idempotency_key, None, timeout_s)
        return ChargeStatus(**doc)


class HttpRateQuoter:
    """The rate service reached over HTTP."""

    honours_timeout = True

    def __init__(self, base_url: str) -> None:
        self._t = _Transport(base_url)

    def quote(self, country: str, postal_code: str | None, weight_g: int, *, timeout_s: float) -> RateQuote:
        try:
            status, doc = self._t.request("POST", "/v1/rates/quote", {
                "country": country, "postal_code": postal_code, "weight_g": weight_g, "timeout_s": timeout_s},
                {}, timeout_s)
        except ConnectionRefusedError as exc:
            raise RateServiceError("unavailable", f"connection refused: {exc}") from None
        except TimeoutError:
            raise RateServiceError("timeout", f"no rate within {timeout_s:.3f}s") from None
        except (ConnectionError, OSError) as exc:
            raise RateServiceError("error", f"connection lost: {exc}") from None
        if status != 200:
            reason = (doc or {}).get("error", "error") if isinstance(doc, dict) else "error"
            raise RateServiceError(reason if reason in ("timeout", "unavailable") else "error", f"HTTP {status}")
        return RateQuote(**doc)
