"""The simulated payment processors and rate service as their own HTTP process.

A real gateway is another system: its ledger writes and latency are not the shop server's CPU. This process runs
the same simulators as the in-process ones (:mod:`shopfloor.simulators.gateway`), with their ledger and fault
configuration in the gateway database it is given (on SQLite a file of its own beside the shop's, so its writes
never take the shop's write lock; the admin API's fault controls and ledger views read and write the same tables),
behind a Stripe-like HTTP shape. Every call carries the caller's ``timeout_s``; a simulated stall holds the request
that long, and the client gives up on its own clock.

Every call is served on the event loop: the simulated latency is an ``asyncio`` sleep, not a parked thread, and the
ledger step runs inline on SQLite (a local transaction of tens of microseconds) or on a worker thread on
PostgreSQL. A thread per call in flight (64 at once under the checkout benchmark) cost this process about 0.8 ms of
CPU per authorization, on the core it shares with the load generator.

    POST /v1/processors/{name}/authorize   Idempotency-Key; {"amount", "currency", "token", "order_id", "timeout_s"}
    POST /v1/processors/{name}/capture     Idempotency-Key; {"amount", "currency", "timeout_s"}
    POST /v1/processors/{name}/void        Idempotency-Key; {"timeout_s"}
    GET  /v1/processors/{name}/charges/{idempotency_key}?timeout_s=
    POST /v1/rates/quote                   {"country", "postal_code", "weight_g", "timeout_s"}

A definite answer is 200 with the response; a failure is 503 (``connection_refused``, ``unavailable``: certainly
not processed), 504 (``timeout``: unknown) or 409 (``key_cancelled``), with ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..orders.shipping import RateServiceError
from ..payments import AttemptKeyCancelled, ConnectionRefused, ProcessorTimeout, ProcessorUnavailable


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _failure(exc: Exception) -> Response:
    if isinstance(exc, ConnectionRefused):
        return _json({"error": "connection_refused", "message": str(exc)}, 503)
    if isinstance(exc, ProcessorUnavailable):
        return _json({"error": "unavailable", "message": str(exc)}, 503)
    if isinstance(exc, ProcessorTimeout):
        return _json({"error": "timeout", "message": str(exc)}, 504)
    if isinstance(exc, AttemptKeyCancelled):
        return _json({"error": "key_cancelled", "message": str(exc)}, 409)
    raise exc


def build_sim_app(processors: dict[str, Any], rates: Any, *, threads: int = 16) -> Starlette:
    """The HTTP face of ``processors`` (name -> simulated processor) and ``rates`` (simulated rate service), served
    on the event loop through their ``*_on_loop`` methods. ``threads`` bounds the worker threads that ledger steps
    use where they do not run inline (PostgreSQL)."""

    async def call(request: Request, op: str) -> Response:
        proc = processors.get(request.path_params["name"])
        if proc is None:
            return _json({"error": "not_found", "message": "no such processor"}, 404)
        if op == "status":
            timeout = float(request.query_params.get("timeout_s", 1))
            pending = proc.status_on_loop(request.path_params["key"], timeout_s=timeout)
        else:
            body = orjson.loads(await request.body())
            key = request.headers.get("idempotency-key")
            if not key:
                return _json({"error": "bad_request", "message": "Idempotency-Key header is required"}, 400)
            timeout = float(body["timeout_s"])
            if op == "authorize":
                pending = proc.authorize_on_loop(key, int(body["amount"]), body["currency"], body.get("token", ""),
                                               body["order_id"], timeout_s=timeout)
            elif op == "capture":
                pending = proc.capture_on_loop(key, int(body["amount"]), body["currency"], timeout_s=timeout)
            else:
                pending = proc.void_on_loop(key, timeout_s=timeout)
        try:
            result = await pending
        except (ConnectionRefused, ProcessorUnavailable, ProcessorTimeout, AttemptKeyCancelled) as exc:
            return _failure(exc)
        return _json(result)  # orjson writes a dataclass as its fields, as asdict would

    async def authorize(request: Request) -> Response:
        return await call(request, "authorize")

    async def capture(request: Request) -> Response:
        return await call(request, "capture")

    async def void(request: Request) -> Response:
        return await call(request, "void")

    async def status(request: Request) -> Response:
        return await call(request, "status")

    async def quote(request: Request) -> Response:
        body = orjson.loads(await request.body())
        try:
            q = await rates.quote_on_loop(body["country"], body.get("postal_code"), int(body.get("weight_g", 1000)),
                                        timeout_s=float(body["timeout_s"]))
        except RateServiceError as exc:
            return _json({"error": exc.reason, "message": str(exc)}, 504 if exc.reason == "timeout" else 503)
        return _json(q)

    async def healthz(_: Request) -> Response:
        return _json({"status": "ok", "processors": sorted(processors)})

    @asynccontextmanager
    async def lifespan(_app):
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sim-ledger")
        asyncio.get_running_loop().set_default_executor(pool)  # asyncio.to_thread's threads
        try:
            yield
        finally:
            pool.shutdown(wait=False)

    return Starlette(lifespan=lifespan, routes=[
        Route("/healthz", healthz),
        Route("/v1/processors/{name}/authorize", authorize, methods=["POST"]),
        Route("/v1/processors/{name}/capture", capture, methods=["POST"]),
        Route("/v1/processors/{name}/void", void, methods=["POST"]),
        Route("/v1/processors/{name}/charges/{key}", status),
        Route("/v1/rates/quote", quote, methods=["POST"]),
    ])
