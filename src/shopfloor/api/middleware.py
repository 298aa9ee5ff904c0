"""Pure ASGI middleware (no BaseHTTPMiddleware: it would cost every request a task and a copy)."""

from __future__ import annotations

import time
from typing import Any, Callable

from starlette.exceptions import HTTPException as StarletteHTTPException


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


class BodySizeLimitMiddleware:
    """Answers 413 (the error envelope) to a request whose body is larger than ``max_bytes``: at once when its
    ``Content-Length`` says so, otherwise (a chunked body) as soon as the bytes read pass the limit."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
                break
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its declared length
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        seen = {"bytes": 0}

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        started = {"response": False}

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                started["response"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started["response"]:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send) -> None:
        from .errors import envelope

        response = envelope(413, "payload_too_large", _BodyTooLarge(self.max_bytes).detail)
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised while the route reads the body; an HTTP exception, so FastAPI passes it on to the error handler."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"body: larger than {max_bytes} bytes (SHOPFLOOR_MAX_REQUEST_BODY_BYTES)")
