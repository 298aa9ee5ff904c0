"""Pure ASGI middleware (no BaseHTTPMiddleware: it would cost every request a task and a copy)."""

from __future__ import annotations

import time
from typing import Any, Callable

from starlette.exceptions import HTTPException


class RequestMetricsMiddleware:
    """Times every HTTP request and hands (route template, method, status, seconds) to ``observers``."""

    def __init__(self, app, observers: list[Callable[[str, str, int, float], None]]) -> None:
        self.app = app
        self.observers = observers

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or not self.observers:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            for observe in self.observers:
                observe(template, scope.get("method", "GET"), status["code"], elapsed)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body crosses the limit. An ``HTTPException`` so that FastAPI's body
    parsing passes it on (anything else becomes a 400) and the error handlers answer 413 ``payload_too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodySizeLimitMiddleware:
    """Refuses request bodies over a byte limit with 413 ``payload_too_large``, while they are read.

    A declared ``Content-Length`` over the limit is answered before any of the body is read; a body without one
    (chunked) is counted as it streams in and cut off at the first chunk that crosses the limit, so a client can
    never make the server buffer more than the limit. ``route_limits`` raises (or lowers) the limit for the exact
    paths that need it (batch ingestion)."""

    def __init__(self, app, default_limit: int, route_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = int(default_limit)
        self.route_limits = dict(route_limits or {})

    def limit_for(self, path: str) -> int:
        exact = self.route_limits.get(path)
        if exact is not None:
            return exact
        # A key ending in "*" covers every path under it (per-shop webhook paths, for instance).
        prefixes = [k for k in self.route_limits if k.endswith("*") and path.startswith(k[:-1])]
        return self.route_limits[max(prefixes, key=len)] if prefixes else self.default_limit

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server itself rejects a malformed length
                if declared > limit:
                    await _too_large(send, limit)
                    return
                break
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _too_large(send, exc.limit)


async def _too_large(send, limit: int) -> None:
    import orjson

    body = orjson.dumps({"error": {
        "code": "payload_too_large", "message": too_large_message(limit),
        "details": [{"field": "body", "max_bytes": limit}]}})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class CacheControlDefault:
    """``Cache-Control: no-store`` on every response that does not say otherwise: checkout, orders, admin and every
    authenticated answer must never sit in a shared cache. Only routes that set their own header (product pages,
    search, promises) are cacheable. The vendored static files (``skip_prefixes``) keep their own validators."""

    def __init__(self, app, value: bytes = b"no-store",
                 skip_prefixes: tuple[str, ...] = ("/dashboard/static/", "/docs/static/")) -> None:
        self.app = app
        self.value = value
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = message.get("headers") or []
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message["headers"] = [*headers, (b"cache-control", self.value)]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class ReadRateLimitMiddleware:
    """Open read endpoints (``RateLimits.read_paths``): a token bucket per client address, answered with 429
    ``too_many_requests`` and ``Retry-After`` before any route work."""

    def __init__(self, app, limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "http" and self.limits.is_read(scope["method"], scope["path"]):
            client = scope.get("client")
            refusal = await self.limits.read(client[0] if client else None)
            if refusal is not None:
                from .errors import envelope

                response = envelope(429, "too_many_requests",
                                    f"rate limit {refusal.limit}: retry after {refusal.retry_after_s} s",
                                    refusal.details(), headers={"Retry-After": str(refusal.retry_after_s)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
