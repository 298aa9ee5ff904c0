"""Clients of the simulator process (``shopfloor simulate serve``): a :class:`PaymentProcessor` and a
:class:`RateQuoter` over HTTP, exactly as an adapter for a real gateway would be.

The checkout calls from the server's event loop (``*_async`` methods): a small HTTP/1.1 client on asyncio's
transports with httptools' C response parser, keeping idle keep-alive connections per event loop. No thread waits
on a remote call, and a call costs a fraction of what a general-purpose async client's does. The worker and the
CLI call the blocking methods, which keep one standard-library keep-alive connection per thread. Every call is
bounded by its ``timeout_s`` (``honours_timeout``). A failure to connect means certainly not processed; a timeout
or a connection lost after the request was sent means the outcome is unknown, as with any remote processor.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import weakref
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

import httptools
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


class _AsyncConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection on an event loop: one request at a time, the response parsed by
    httptools as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.body: list[bytes] = []
        self.closed = False
        self.got_bytes = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("connection lost"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self.transport.write(data)
        return self.waiter


class _AsyncTransport:
    """Keep-alive connections to one base URL, kept per event loop (idle ones only: one request per connection at
    a time), for the ``*_async`` calls."""

    #: Idle connections kept per loop; more concurrent calls open more, and the surplus is closed on return.
    max_idle = 128

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._head = f"Host: {self.host}:{self.port}\r\n".encode()
        self._idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_AsyncConnection]] = \
            weakref.WeakKeyDictionary()

    async def request(self, method: str, path: str, body: dict | None, headers: dict[str, str], timeout_s: float
                      ) -> tuple[int, Any]:
        """Same contract as :meth:`_Transport.request`, awaited on the running loop."""
        loop = asyncio.get_running_loop()
        idle = self._idle.get(loop)
        if idle is None:
            idle = self._idle[loop] = []
        payload = orjson.dumps(body) if body is not None else b""
        lines = [f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode(), self._head]
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body is not None:
            lines.append(b"Content-Type: application/json\r\n")
        lines.append(b"Content-Length: %d\r\n\r\n" % len(payload))
        lines.append(payload)
        data = b"".join(lines)
        try:
            async with asyncio.timeout(max(timeout_s, 0.001)):
                for attempt in (0, 1):
                    conn = None
                    while idle:
                        conn = idle.pop()
                        if not conn.closed:
                            break
                        conn = None
                    reused = conn is not None
                    if conn is None:
                        # ConnectionRefusedError propagates: nothing was sent
                        _, conn = await loop.create_connection(_AsyncConnection, self.host, self.port)
                    try:
                        status, raw = await conn.send(data)
                    except ConnectionError as exc:
                        conn.close()
                        # A kept connection the server had closed while idle: nothing was processed, send it again.
                        if attempt == 0 and reused and not conn.got_bytes:
                            continue
                        raise ConnectionError(str(exc)) from exc
                    except BaseException:  # the timeout (cancellation): the connection's state is unknown
                        conn.close()
                        raise
                    if not conn.closed:
                        if len(idle) < self.max_idle:
                            idle.append(conn)
                        else:
                            conn.close()
                    return status, orjson.loads(raw) if raw else None
        except TimeoutError:
            raise TimeoutError(f"no answer within {timeout_s:.3f}s") from None
        raise ConnectionError("connection lost")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        for idle in list(self._idle.values()):
            while idle:
                idle.pop().close()


class HttpProcessor:
    """A payment processor reached over HTTP (the simulator process's Stripe-like shape)."""

    honours_timeout = True

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self._t = _Transport(base_url)
        self._at = _AsyncTransport(base_url)

    def _call(self, method: str, op: str, key: str, body: dict | None, timeout_s: float) -> Any:
        path = f"/v1/processors/{self.name}/{op}"
        try:
            status, doc = self._t.request(method, path, body, {"Idempotency-Key": key}, timeout_s)
        except OSError as exc:
            raise self._failure(exc, timeout_s) from None
        return self._answer(status, doc)

    async def _acall(self, method: str, op: str, key: str, body: dict | None, timeout_s: float) -> Any:
        path = f"/v1/processors/{self.name}/{op}"
        try:
            status, doc = await self._at.request(method, path, body, {"Idempotency-Key": key}, timeout_s)
        except OSError as exc:
            raise self._failure(exc, timeout_s) from None
        return self._answer(status, doc)

    def _failure(self, exc: OSError, timeout_s: float) -> Exception:
        """What a transport's failure means for the call (refused, timed out, or lost after sending); built on the
        failure path only, so a call that is answered pays nothing for it."""
        if isinstance(exc, ConnectionRefusedError):
            return ConnectionRefused(self.name, f"connection refused: {exc}")
        if isinstance(exc, TimeoutError):
            return ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s")
        return OutcomeUnknown(self.name, f"connection lost: {exc}")

    def _answer(self, status: int, doc: Any) -> Any:
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
        doc = self._call("GET", f"charges/{url_quote(idempotency_key, safe='')}?timeout_s={timeout_s}",
                         idempotency_key, None, timeout_s)
        return ChargeStatus(**doc)

    # The same calls from an event loop (the checkout's inline authorization): see :meth:`PaymentRouter.authorize_async`.
    async def authorize_async(self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *,
                              timeout_s: float) -> ProcessorResponse:
        doc = await self._acall("POST", "authorize", idempotency_key, {
            "amount": amount, "currency": currency, "token": token, "order_id": order_id, "timeout_s": timeout_s},
            timeout_s)
        return ProcessorResponse(**doc)

    async def void_async(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse:
        return ProcessorResponse(**await self._acall("POST", "void", idempotency_key, {"timeout_s": timeout_s},
                                                     timeout_s))

    async def status_async(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus:
        doc = await self._acall("GET", f"charges/{url_quote(idempotency_key, safe='')}?timeout_s={timeout_s}",
                                idempotency_key, None, timeout_s)
        return ChargeStatus(**doc)


class HttpRateQuoter:
    """The rate service reached over HTTP."""

    honours_timeout = True

    def __init__(self, base_url: str) -> None:
        self._t = _Transport(base_url)
        self._at = _AsyncTransport(base_url)

    def quote(self, country: str, postal_code: str | None, weight_g: int, *, timeout_s: float) -> RateQuote:
        try:
            status, doc = self._t.request("POST", "/v1/rates/quote", {
                "country": country, "postal_code": postal_code, "weight_g": weight_g, "timeout_s": timeout_s},
                {}, timeout_s)
        except OSError as exc:
            raise self._failure(exc, timeout_s) from None
        return self._answer(status, doc)

    async def quote_async(self, country: str, postal_code: str | None, weight_g: int, *, timeout_s: float
                          ) -> RateQuote:
        """:meth:`quote` from an event loop."""
        try:
            status, doc = await self._at.request("POST", "/v1/rates/quote", {
                "country": country, "postal_code": postal_code, "weight_g": weight_g, "timeout_s": timeout_s},
                {}, timeout_s)
        except OSError as exc:
            raise self._failure(exc, timeout_s) from None
        return self._answer(status, doc)

    @staticmethod
    def _failure(exc: OSError, timeout_s: float) -> RateServiceError:
        """What a transport's failure means for the quote; built on the failure path only."""
        if isinstance(exc, ConnectionRefusedError):
            return RateServiceError("unavailable", f"connection refused: {exc}")
        if isinstance(exc, TimeoutError):
            return RateServiceError("timeout", f"no rate within {timeout_s:.3f}s")
        return RateServiceError("error", f"connection lost: {exc}")

    @staticmethod
    def _answer(status: int, doc: Any) -> RateQuote:
        if status != 200:
            reason = (doc or {}).get("error", "error") if isinstance(doc, dict) else "error"
            raise RateServiceError(reason if reason in ("timeout", "unavailable") else "error", f"HTTP {status}")
        return RateQuote(**doc)
