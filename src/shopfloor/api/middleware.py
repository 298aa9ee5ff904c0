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
        return self.route_limits.get(path, self.default_limit)

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
