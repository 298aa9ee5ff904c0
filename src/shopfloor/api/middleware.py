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
        self.details = [{"field": "body", "max_bytes": limit}]


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


#: How a NUL character is written in JSON text (JSON has no other way: a raw control character is not JSON).
_NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"


class NulCharacter(HTTPException):
    """A NUL character in a JSON string (value or key), a query parameter or a path parameter: 422 naming the
    field. PostgreSQL's text cannot hold one (psycopg refuses it: a 500) while SQLite stores it, so it is refused
    before any route on both. Raised from ``receive`` like :class:`BodyTooLarge`, for the same reason."""

    def __init__(self, field: str) -> None:
        super().__init__(422, f"{field}: {NUL_MESSAGE}")
        self.field = field
        self.details = [{"field": field, "message": NUL_MESSAGE, "type": "nul_character"}]


def _field_text(part: Any) -> str:
    return str(part).replace("\x00", "\\u0000")


def json_nul_field(raw: bytes) -> str | None:
    """The first field of a JSON document (``items.0.sku``; ``body`` for a bare string) whose string value or key
    holds a NUL character; None when none does or ``raw`` is not JSON (the route then answers as usual)."""
    import json

    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[tuple, Any]] = [((), doc)]
    while stack:  # depth first, in document order; a key before its value
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return ".".join(_field_text(p) for p in path) or "body"
        elif isinstance(value, dict):
            for key, child in reversed(list(value.items())):
                stack.append(((*path, key), child))
                stack.append(((*path, key), key))
        elif isinstance(value, list):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(value))))
    return None


def _leaf_routes(routes):
    """The routes themselves: FastAPI keeps an included router whole (``original_router``) rather than copying
    its routes into the app's list. (A prefix given to ``include_router`` is not applied here: no route of this app
    has one; a path it would miss is named ``path``.)"""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def path_or_query_nul_field(scope: dict[str, Any]) -> str | None:
    """The path parameter (named by the route it matches; ``path`` when none does) or query parameter that holds a
    NUL character (``%00``), or None."""
    if "\x00" in scope.get("path", ""):
        from starlette.routing import Match

        router = getattr(scope.get("app"), "router", None)
        for route in _leaf_routes(getattr(router, "routes", ())):
            try:
                match, child = route.matches(scope)
            except Exception:  # noqa: BLE001 - a route that cannot judge this path does not match it
                continue
            if match != Match.NONE:
                for name, value in child.get("path_params", {}).items():
                    if isinstance(value, str) and "\x00" in value:
                        return name
        return "path"
    from urllib.parse import parse_qsl

    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return _field_text(name)
    return None


class BodySizeLimitMiddleware:
    """Refuses request bodies over a byte limit with 413 ``payload_too_large``, while they are read.

    A declared ``Content-Length`` over the limit is answered before any of the body is read; a body without one
    (chunked) is counted as it streams in and cut off at the first chunk that crosses the limit, so a client can
    never make the server buffer more than the limit. ``route_limits`` raises (or lowers) the limit for the exact
    paths that need it (batch ingestion).

    Two more guards ride on the same wrappers, so they cost a request no extra layer:

    * A NUL character is refused with 422 naming the field (:class:`NulCharacter`): in the path or the query (one
      substring test each), and in a JSON body, which is parsed here only when its bytes hold the escape
      ``\\u0000`` (one substring test per chunk; a match may be an escaped backslash followed by ``u0000``, which
      the parse tells apart).
    * ``on_unexpected`` (``(exception, scope) -> response``) answers an exception no handler took, when the response
      has not started: the 500 envelope is sent once, and the exception stops here. Left to Starlette's
      ``ServerErrorMiddleware`` it was re-raised after the 500, logged a second time by the server, which then
      dropped the keep-alive connection; and the 500 went out around ``CacheControlDefault`` (no ``no-store``)."""

    def __init__(self, app, default_limit: int, route_limits: dict[str, int] | None = None,
                 on_unexpected: Callable[[Exception, dict[str, Any]], Any] | None = None) -> None:
        self.app = app
        self.default_limit = int(default_limit)
        self.route_limits = dict(route_limits or {})
        self.on_unexpected = on_unexpected

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
        path = scope.get("path", "")
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            field = path_or_query_nul_field(scope)
            if field is not None:
                refusal = NulCharacter(field)
                await _refuse(send, 422, "validation_error", refusal.detail, refusal.details)
                return
        limit = self.limit_for(path)
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
        earlier: list[bytes] | None = None  # the chunks so far of a body that comes in several
        tail = b""  # the last bytes of those chunks: an escape may straddle two

        async def limited_receive():
            nonlocal received, earlier, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise BodyTooLarge(limit)
                if _NUL_ESCAPE in body or (tail and _NUL_ESCAPE in tail + body[:5]):
                    return await whole_body_checked(message)
                if message.get("more_body", False) or earlier is not None:
                    if earlier is None:
                        earlier = []
                    earlier.append(body)
                    tail = (tail + body)[-5:]
            return message

        async def whole_body_checked(message):
            """The rest of the body read now, the whole parsed once: NulCharacter, or the rest as one message."""
            nonlocal received, earlier, tail
            rest = [message.get("body", b"")]
            more = message.get("more_body", False)
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return message  # the client went away
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(limit)
                rest.append(chunk)
                more = message.get("more_body", False)
            field = json_nul_field(b"".join([*(earlier or ()), *rest]))
            if field is not None:
                raise NulCharacter(field)
            earlier, tail = None, b""
            return {"type": "http.request", "body": b"".join(rest), "more_body": False}

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
        except NulCharacter as exc:
            if started:
                raise
            await _refuse(send, 422, "validation_error", exc.detail, exc.details)
        except HTTPException:
            raise
        except Exception as exc:
            if started or self.on_unexpected is None:
                raise
            response = self.on_unexpected(exc, scope)
            await response(scope, receive, send)


async def _too_large(send, limit: int) -> None:
    await _refuse(send, 413, "payload_too_large", too_large_message(limit), [{"field": "body", "max_bytes": limit}],
                  close=True)


async def _refuse(send, status: int, code: str, message: str, details: list, close: bool = False) -> None:
    import orjson

    body = orjson.dumps({"error": {"code": code, "message": message, "details": details}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the body was not read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
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
