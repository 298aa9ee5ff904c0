"""FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
from functools import partial
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .crowd_front import CrowdFront, ShopfloorAPI
from .responses import FastJSONResponse

from .. import __version__
from ..bootstrap import Container, build_container
from ..config import Settings
from .auth import Authenticator
from .errors import install_error_handlers, unexpected_error_response
from .docs import install_docs
from .middleware import BodySizeLimitMiddleware, CacheControlDefault, RequestMetricsMiddleware
from .routes import (analytics, capacity, catalog, checkout, dashboard, integrations, payments, products, promise,
                     queue, restock, tower, webhooks)


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Checkout hands blocking calls (rate quote, promise, processor authorization) to the loop's default
        # executor; its stock size (cores + 4) would cap the concurrent checkouts of a process at about six.
        from concurrent.futures import ThreadPoolExecutor

        from ..runtime import name_os_thread

        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=container.settings.buy_path_threads, thread_name_prefix="buy-path",
                               initializer=name_os_thread))
        checkpointer = container.services.get("store.checkpointer")
        if checkpointer is not None:
            checkpointer.start()
        # Everything loaded so far (libraries, schemas, the container) lives as long as the process. Left in the
        # collector's oldest generation it made every full collection walk it: 160-200 ms stop-the-world pauses
        # about once per thousand checkouts under load, which set the p99. Collect once now and move the survivors
        # to the permanent generation, so later full collections only walk objects created while serving.
        gc.collect()
        gc.freeze()
        if container.settings.server_switch_interval_ms:
            import sys

            sys.setswitchinterval(container.settings.server_switch_interval_ms / 1000)
        gen0 = container.settings.server_gc_gen0_threshold
        if gen0:
            _, gen1, gen2 = gc.get_threshold()
            gc.set_threshold(gen0, gen1, gen2)
        yield
        container.close()

    app = ShopfloorAPI(
        title="shopfloor",
        version=__version__,
        description="Buy path, promise engine, forecasting brain and control tower for online stores.",
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves /docs from the vendored Swagger UI (FastAPI's page needs a CDN)
        redoc_url=None,
    )
    app.state.container = container
    app.state.authenticator = Authenticator(container.engine)
    install_error_handlers(app)
    install_docs(app)

    @app.get("/healthz", tags=["ops"],
             responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
    async def healthz():
        """Liveness. Touches no database. ``HEAD`` answers the same (load balancers check with it)."""
        return {"status": "ok"}

    # FastAPI's routes answer only the methods they list; the server sends a HEAD answer's headers, no body.
    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    metrics = container.services.get("tower.metrics")
    observers = list(container.services.get("http.observers", []))
    if metrics is not None:
        observers.insert(0, metrics.observe_http)
        from fastapi import Response

        from ..tower.metrics import render_latest

        extra = tuple(container.services.get("metrics.collectors", ()))

        @app.get("/metrics", tags=["ops"], include_in_schema=False)
        async def prometheus_metrics():
            """Prometheus exposition (multiprocess-aware when PROMETHEUS_MULTIPROC_DIR is set)."""
            if extra:  # computed from the database: off the event loop
                body, ctype = await asyncio.to_thread(render_latest, metrics.registry, extra)
            else:
                body, ctype = render_latest(metrics.registry)
            return Response(body, media_type=ctype)

    settings = container.settings
    limits = container.services.get("rate_limits")
    if limits is not None and limits.reads_per_address is not None:
        from .middleware import ReadRateLimitMiddleware

        app.add_middleware(ReadRateLimitMiddleware, limits=limits)
    # Inside the metrics middleware, so that refused bodies are counted as 413s like any other answer; it also
    # refuses NUL characters (422) and answers unhandled exceptions (500, once, no-store: see its docstring).
    app.add_middleware(BodySizeLimitMiddleware, default_limit=settings.http_max_body_bytes,
                       route_limits={"/v1/integrations/shopify/*": settings.shopify_webhook_max_bytes,
                                     **settings.http_route_body_limits},
                       on_unexpected=unexpected_error_response)
    app.add_middleware(RequestMetricsMiddleware, observers=observers)
    # Outermost: whatever answers (a route, the fast path, an error handler) is no-store unless it said otherwise.
    app.add_middleware(CacheControlDefault)

    app.include_router(catalog.router)
    app.include_router(products.router)
    app.include_router(checkout.router)
    app.include_router(queue.router)
    app.include_router(payments.router)
    app.include_router(promise.router)
    app.include_router(restock.router)
    app.include_router(tower.router)
    app.include_router(capacity.router)
    app.include_router(webhooks.router)
    app.include_router(integrations.router)
    app.include_router(analytics.router)
    dashboard.mount(app)
    _install_crowd_front(app, container, observers)
    return app


def _install_crowd_front(app: ShopfloorAPI, container: Container, observers: list) -> None:
    """The checkout and the queue status served ahead of the FastAPI stack (see :mod:`.crowd_front`); their
    FastAPI routes answer whatever the front hands on and stay the OpenAPI entries."""
    from .fast_checkout import PATH as CHECKOUT_PATH, CheckoutFastPath
    from .fast_queue import QueueStatusFastPath

    settings = container.settings
    stack = partial(FastAPI.__call__, app)
    body_limits = BodySizeLimitMiddleware(None, settings.http_max_body_bytes, settings.http_route_body_limits)
    front = CrowdFront(stack, checkout=None, queue=None, observers=observers,
                       checkout_body_limit=body_limits.limit_for(CHECKOUT_PATH),
                       read_limits=container.services.get("rate_limits"))
    checkout_route = next((r for r in checkout.router.routes if getattr(r, "path", None) == CHECKOUT_PATH), None)
    lane = None
    if container.services.get("waitroom") is not None and settings.waitroom_arrival_lane_per_turn:
        from .crowd_front import ArrivalLane

        lane = ArrivalLane(settings.waitroom_arrival_lane_per_turn)
    front.checkout = CheckoutFastPath(front.handed_on, container=container, authenticator=app.state.authenticator,
                                      route=checkout_route, arrivals=lane)
    front.arrivals = lane  # the HTTP protocol's arrival line shares it (shopfloor.api.lean_http)
    if container.services.get("waitroom") is not None and (settings.waitroom_sold_out_shortcut
                                                           or settings.waitroom_queued_shortcut):
        from .crowd_front import SoldOutShortcut

        front.shortcut = SoldOutShortcut(container.services["waitroom"], front.checkout,
                                         container.services.get("bot_alerts"), observers,
                                         front.checkout_body_limit, limits=container.services.get("rate_limits"),
                                         answers_sold_out=settings.waitroom_sold_out_shortcut,
                                         answers_queued=settings.waitroom_queued_shortcut)
        container.services["waitroom.sold_out_shortcut"] = front.shortcut  # its counts show in the tower
    if container.services.get("waitroom") is not None:
        queue_route = next((r for r in queue.router.routes if getattr(r, "path", None) == "/v1/queue/{token}"), None)
        front.queue = QueueStatusFastPath(front.handed_on, container=container,
                                          max_wait_s=settings.waitroom_max_hold_s, route=queue_route)
        if settings.waitroom_status_shortcut:
            from .crowd_front import QueueStatusShortcut

            front.status_shortcut = QueueStatusShortcut(container.services["waitroom"], observers,
                                                        settings.waitroom_max_hold_s,
                                                        read_limits=container.services.get("rate_limits"),
                                                        template=getattr(queue_route, "path", None))
            container.services["waitroom.status_shortcut"] = front.status_shortcut
    app.front = front


def app_from_env() -> FastAPI:
    """uvicorn factory (``--factory``): settings from the environment."""
    return create_app(build_container(Settings(), server=True))


def served_app_from_env():
    """The factory ``shopfloor serve`` runs: :func:`app_from_env` behind the proxy headers' middleware when
    ``http_proxy_headers`` is on (uvicorn's own is then off: see :mod:`shopfloor.api.proxy`)."""
    app = app_from_env()
    settings = app.state.container.settings
    if not settings.http_proxy_headers:
        return app
    from .proxy import FastProxyHeaders

    proxied = FastProxyHeaders(app, trusted_hosts=settings.http_forwarded_allow_ips)
    shortcut = getattr(getattr(app, "front", None), "shortcut", None)
    if shortcut is not None:  # the shortcut reads the client's address as the proxy headers' middleware does
        shortcut.trusted_hosts = proxied.trusted_hosts
    status_shortcut = getattr(getattr(app, "front", None), "status_shortcut", None)
    if status_shortcut is not None:
        status_shortcut.trusted_hosts = proxied.trusted_hosts
    return proxied
