"""Pure ASGI middleware (no BaseHTTPMiddleware: it would cost every request a task and a copy)."""

from __future__ import annotations

import time
from typing import Any, Callable


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
