"""The one place that builds concrete adapters and wires them together."""

from __future__ import annotations

import threading
from functools import partial
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from .config import Settings
from .domain.clock import Clock, SystemClock
from .store.engine import WalCheckpointer, make_engine

if TYPE_CHECKING:
    from .fulfillment.analytics import FulfillmentAnalytics
    from .planning.restock_service import RestockPlanner


@dataclass
class Container:
    """Everything a process needs, built once. Routes and commands receive it; nothing reads globals."""

    settings: Settings
    engine: Engine
    clock: Clock
    # Area services by name ("buy_path", "payments", "promise", ...); see build_container.
    services: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        closed: set[int] = set()
        for svc in self.services.values():  # a service registered under two names is closed once
            close = getattr(svc, "close", None)
            if callable(close) and id(svc) not in closed:
                closed.add(id(svc))
                close()
        self.engine.dispose()


def check_settings(settings: Settings) -> None:
    """Reject nested configuration that :func:`build_container` would only trip over while building (for a server,
    inside its app factory, as a traceback): a ``ValueError`` naming the ``SHOPFLOOR_*`` variable. Opens nothing."""
    from pydantic import ValidationError

    from .orders.shipping import ProvisionalRateTable
    from .simulators import FaultConfig

    try:
        ProvisionalRateTable.from_settings(settings.shipping_provisional_rates)
    except ValueError as exc:
        message = str(exc)
        named = message.replace("shipping_provisional_rates", "SHOPFLOOR_SHIPPING_PROVISIONAL_RATES", 1)
        raise ValueError(named if named != message else f"SHOPFLOOR_SHIPPING_PROVISIONAL_RATES: {message}") from None
    for name, faults in settings.payments_sim_faults.items():
        try:
            FaultConfig.model_validate(faults)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"SHOPFLOOR_PAYMENTS_SIM_FAULTS: [{name!r}].{where}: {first['msg']}") from None
    if settings.waitroom_secret is not None and len(settings.waitroom_secret.get_secret_value().encode()) < 16:
        raise ValueError("SHOPFLOOR_WAITROOM_SECRET: at least 16 bytes")
    if settings.waitroom_products and settings.redis_url and settings.waitroom_secret is None:
        raise ValueError("SHOPFLOOR_WAITROOM_SECRET: set it when SHOPFLOOR_REDIS_URL shares the waiting room between "
                         "server processes (each process would otherwise sign queue tokens with its own key)")
    bad = [sku for sku in settings.waitroom_products if not sku or "|" in sku or len(sku) > 64]
    if bad:
        raise ValueError(f"SHOPFLOOR_WAITROOM_PRODUCTS: not a SKU: {bad[0]!r}")


def build_container(settings: Settings | None = None, *, clock: Clock | None = None,
                    server: bool = False) -> Container:
    """Build engine, clock and services from settings. Starts no thread; the only connection it opens is to
    create the simulated gateway's own SQLite file when the store is SQLite."""
    from .orders import BuyPath, CheckoutService, StageLog, promise_bookkeeping
    from .orders.payment_flow import PaymentSettlement

    settings = settings or Settings()
    from .store.raw import use_raw_writer_on

    use_raw_writer_on(settings.store_raw_writer.split(","))
    background_checkpoints = (settings.sqlite_checkpoint_interval_s > 0
                              and WalCheckpointer.applies_to(settings.database_url))
    # With a background checkpointer the writers' own checkpoints are only a safety net (40 MB of WAL).
    # ``server``: this is shopfloor serve, whose checkouts ask for SQLite's write lock promptly (see make_engine)
    engine = make_engine(settings.database_url, wal_autocheckpoint=10_000 if background_checkpoints else 1000,
                         pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow,
                         write_lock_poll_s=settings.sqlite_write_lock_poll_ms / 1000 if server else 0.0)
    clock = clock or SystemClock()
    container = Container(settings=settings, engine=engine, clock=clock)
    if background_checkpoints:
        # Started by the server (api.app lifespan); other commands leave checkpoints to their writers.
        container.services["store.checkpointer"] = WalCheckpointer(settings.database_url,
                                                                   settings.sqlite_checkpoint_interval_s)
    checkout = CheckoutService(
        engine, clock,
        reservation_ttl_s=settings.reservation_ttl_s,
        batch_max_size=settings.batch_max_size,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        stages=StageLog(settings.checkout_stages_log) if settings.checkout_stages_log else None,
    )
    from prometheus_client import CollectorRegistry

    # One metrics registry per process: payments and the funnel both register on it and /metrics exposes it.
    registry = CollectorRegistry(auto_describe=True)
    container.services["metrics.registry"] = registry
    payments = build_payments(settings, engine, clock, registry)
    settlement = PaymentSettlement(
        engine, clock, pending_backoff_base_s=settings.payments_pending_backoff_base_s,
        pending_backoff_max_s=settings.payments_pending_backoff_max_s,
    )
    container.services["payments"] = payments
    from .promise.service import build_promise_service
    from .store.restock import OpenPurchaseOrders

    promise = build_promise_service(settings, engine, clock, incoming=OpenPurchaseOrders(engine))
    container.services["promise"] = promise
    observer = build_tower(container)
    from .promise.degradations import RuleDegradedEngine

    repo = container.services["tower.repository"]
    promise.engine = RuleDegradedEngine(
        promise.engine, lambda now: {d["warehouse"]: d for d in repo.active_degradations(now)}, clock)
    if settings.checkout_promise:
        # The hook sees only orders its own transaction just created: no promise track exists for them yet.
        checkout.after_place = promise_bookkeeping(partial(promise.store.record_promises_in, new_orders=True))
    container.services["buy_path"] = BuyPath(checkout, payments, settlement,
                                             promise=promise.engine if settings.checkout_promise else None,
                                             observer=observer, promise_inline=engine.dialect.name == "sqlite",
                                             stages=checkout.stages)
    build_integrations(container)
    container.services["storefront"] = build_storefront(container)
    container.services["tower.cache_warmer"] = EdgeCacheWarmer(container)
    try:
        from .edge import EdgeLayout, EdgeLogStats

        container.services["edge.log_stats"] = EdgeLogStats(EdgeLayout.from_settings(settings))
    except ValueError:  # a bad SHOPFLOOR_EDGE_* setting: `shopfloor edge` names it; the dashboard shows no panel data
        pass
    build_flash_sale_guards(container)
    return container


def build_storefront(container: Container):
    """The shoppers' read path. With ``read_database_url`` set, product reads, search and the page's stock levels
    come from that database (a standby); the buy path and every write keep the primary."""
    from concurrent.futures import ThreadPoolExecutor

    from .promise.degradations import RuleDegradedEngine
    from .promise.engine import PromiseEngine
    from .promise.service import promise_config
    from .runtime import name_os_thread
    from .store.promise import SqlStockReader
    from .store.restock import OpenPurchaseOrders
    from .store.storefront import SqlCatalogReader
    from .storefront import CachePolicy, StorefrontConfig, StorefrontService

    s = container.settings
    promise = container.services["promise"]
    promises = promise.engine
    read_engine = container.engine
    if s.read_database_url:
        read_engine = make_engine(s.read_database_url, pool_size=s.database_pool_size,
                                  max_overflow=s.database_max_overflow)
        container.services["storefront.read_engine"] = _Disposing(read_engine)
        repo = container.services["tower.repository"]
        replica_stock = SqlStockReader(read_engine)
        container.services["storefront.stock_reader"] = replica_stock
        promises = RuleDegradedEngine(
            PromiseEngine(replica_stock, promise.source, promise_config(s), incoming=OpenPurchaseOrders(read_engine),
                          clock=container.clock),
            lambda now: {d["warehouse"]: d for d in repo.active_degradations(now)}, container.clock)
    cache = CachePolicy(plenty_units=s.storefront_plenty_units, plenty_max_age_s=s.storefront_max_age_plenty_s,
                        low_max_age_s=s.storefront_max_age_low_s, limited_max_age_s=s.storefront_max_age_limited_s,
                        unavailable_max_age_s=s.storefront_max_age_unavailable_s,
                        listing_max_age_s=s.storefront_max_age_listing_s,
                        stale_if_error_s=s.storefront_stale_if_error_s)
    config = StorefrontConfig(cache=cache, budget_s=s.storefront_budget_ms / 1000.0,
                              max_alternatives=s.storefront_max_alternatives,
                              limited_threshold=s.promise_limited_threshold, risk_units=s.storefront_risk_units)
    executor = ThreadPoolExecutor(max_workers=s.storefront_threads, thread_name_prefix="storefront",
                                  initializer=name_os_thread)
    container.services["storefront.executor"] = _ShutsDown(executor)
    return StorefrontService(SqlCatalogReader(read_engine), promises, executor, config)


class _Disposing:
    """Lets ``Container.close`` dispose an extra engine (the read replica's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()


class _ShutsDown:
    def __init__(self, executor) -> None:
        self.executor = executor

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def build_flash_sale_guards(container: Container) -> None:
    """The waiting room (when products are guarded) and the rate limits (when any is set), over Redis when
    ``redis_url`` is set, else in this process's memory. Opens no connection: the Redis client connects on first
    use, inside the server's event loop."""
    import secrets

    from .api.throttle import InProcessBuckets, Limit, RateLimits
    from .waitroom import AdmissionPolicy, GuardedProduct, InProcessQueueStore, QueueTokenCodec, WaitingRoom

    s = container.settings
    metrics = container.services.get("tower.metrics")
    client = None
    if s.redis_url and (s.waitroom_products or _any_rate_limit(s)):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(s.redis_url, socket_timeout=5, socket_connect_timeout=2)
    if s.waitroom_products:
        from .store.waitroom import StockLevelsReader

        if client is not None:
            from .store.queue_redis import RedisQueueStore

            queue = RedisQueueStore(client, prefix=s.redis_key_prefix)
        else:
            queue = InProcessQueueStore()
        secret = (s.waitroom_secret.get_secret_value().encode() if s.waitroom_secret is not None
                  else secrets.token_bytes(32))
        products = [GuardedProduct(sku, None if p.opens_at is None else p.opens_at.timestamp())
                    for sku, p in s.waitroom_products.items()]
        policy = AdmissionPolicy(units_factor=s.waitroom_units_factor, admit_ttl_s=s.waitroom_admit_ttl_s,
                                 serve_rate_per_s=s.waitroom_serve_rate_per_s, max_poll_s=s.waitroom_max_poll_s,
                                 max_in_flight=s.waitroom_max_in_flight or None)
        container.services["waitroom"] = WaitingRoom(
            queue, QueueTokenCodec(secret, s.waitroom_token_ttl_s), policy, StockLevelsReader(container.engine),
            products, stock_cache_s=s.waitroom_stock_cache_s, now_s=lambda: container.clock.now().timestamp(),
            observer=None if metrics is None else metrics.observe_waitroom, max_held=s.waitroom_max_held,
            wake_per_turn=s.waitroom_wake_per_turn)
        buy_path = container.services.get("buy_path")
        if buy_path is not None:  # the sell-out is known when the last unit's reservation commits
            buy_path.checkout_service.watch_stock(s.waitroom_products, container.services["waitroom"].stock_committed)
    if s.waitroom_products or _any_rate_limit(s):
        from .tower.bot_alerts import BotAlerts
        from .waitroom import BotPatternDetector

        detector = BotPatternDetector(window_s=s.bot_window_s, card_addresses=s.bot_card_addresses,
                                      product_addresses=s.bot_product_addresses)
        container.services["bot_alerts"] = BotAlerts(detector, container.services["tower.repository"],
                                                     container.clock, metrics)
    if _any_rate_limit(s):
        if client is not None:
            from .store.ratelimit_redis import RedisBuckets

            buckets = RedisBuckets(client, prefix=s.redis_key_prefix)
        else:
            buckets = InProcessBuckets()

        def limit(value):
            return None if value is None else Limit(value.rate_per_s, value.burst)

        container.services["rate_limits"] = RateLimits(
            buckets, checkout_per_key=limit(s.ratelimit_checkout_per_key),
            checkout_per_address=limit(s.ratelimit_checkout_per_address),
            checkout_per_product=limit(s.ratelimit_checkout_per_product),
            reads_per_address=limit(s.ratelimit_reads_per_address), read_paths=s.ratelimit_read_paths,
            observer=None if metrics is None else metrics.observe_rate_refusal)
    if s.waitroom_products or _any_rate_limit(s):
        from .waitroom import CheckoutGate

        container.services["checkout_gate"] = CheckoutGate(container.services.get("waitroom"),
                                                           container.services.get("rate_limits"),
                                                           container.services.get("bot_alerts"))


def _any_rate_limit(s: Settings) -> bool:
    return any(v is not None for v in (s.ratelimit_checkout_per_key, s.ratelimit_checkout_per_address,
                                       s.ratelimit_checkout_per_product, s.ratelimit_reads_per_address))


def build_tower(container: Container):
    """Metrics, funnel rollups and the ports the rules engine acts through."""
    from .tower.metrics import build_metrics
    from .tower.observer import FunnelObserver
    from .store.tower import TowerRepository
    from .tower.service import FunnelBuffer

    s = container.settings
    metrics = build_metrics(container.services["metrics.registry"])
    repo = TowerRepository(container.engine)
    buffer = FunnelBuffer(repo, s.tower_beacon_flush_s)
    container.services["tower.metrics"] = metrics
    container.services["tower.repository"] = repo
    container.services["tower.funnel_buffer"] = buffer
    container.services["tower.payment_routing"] = container.services["payments"]
    # The rules' `scale` action: what the predictive planner asks for now (pandas loads on the first use only).
    container.services.setdefault("tower.capacity", _PlannerCapacitySource(container))
    from .tower.request_rollups import RequestRollups

    rollups = RequestRollups(container.engine, clock=container.clock)
    container.services["request_rollups"] = rollups
    container.services["http.observers"] = [rollups.observe]
    # The buy path's own stages flush from a background thread (the caller is the event loop).
    stage_buffer = FunnelBuffer(repo, s.tower_beacon_flush_s, background=True)
    container.services["tower.stage_buffer"] = stage_buffer
    # Fulfillment and returns analytics: one cached report feeds the rules' signals and the /metrics gauges.
    from .tower.fulfillment_signals import FulfillmentAnalyticsCollector, FulfillmentSignals

    signals = FulfillmentSignals(build_fulfillment_analytics(container), container.clock,
                                 window_days=s.tower_analytics_window_days, ttl_s=s.tower_analytics_ttl_s)
    container.services["tower.fulfillment_signals"] = signals
    container.services["metrics.collectors"] = [FulfillmentAnalyticsCollector(signals)]
    return FunnelObserver(metrics, stage_buffer, container.clock)


def simulator_url(settings: Settings) -> str | None:
    """Where the simulated gateway keeps its ledger and faults: on SQLite a file beside the store's
    (``<store>-gateway.db``); None on PostgreSQL, where it shares the store's server."""
    if not settings.is_sqlite:
        return None
    path = settings.database_url.split("///", 1)[1] if "///" in settings.database_url else "shopfloor.db"
    return f"sqlite:///{path}-gateway.db" if path != ":memory:" else "sqlite://"


def simulator_engine(settings: Settings, engine: Engine) -> Engine:
    """The simulated gateway is another system: on SQLite it keeps its ledger in its own file (its own write
    lock, so it never queues behind the order store); on PostgreSQL it shares the server."""
    sim_url = simulator_url(settings)
    if sim_url is None:
        return engine
    from .store.schema import metadata
    from .store.payments_tables import sim_gateway_charges, sim_gateway_faults

    sim = make_engine(sim_url, synchronous="NORMAL")  # a stand-in for someone else's system
    metadata.create_all(sim, tables=[sim_gateway_charges, sim_gateway_faults])
    return sim


def build_simulator_app(settings: Settings):
    """``shopfloor simulate serve``: the simulators of ``settings.payments_processors`` and the rate service as an
    HTTP app, with their ledger and faults in the same gateway database the shop's processes use."""
    from .domain.clock import SystemClock
    from .simulators import FaultStore, SimulatedProcessor, SimulatedRateService, build_sim_app

    engine = simulator_engine(settings, make_engine(settings.database_url))
    clock = SystemClock()
    faults = FaultStore(engine, clock, defaults=settings.payments_sim_faults,
                        ttl_s=settings.payments_runtime_cache_ttl_s)
    seed = settings.payments_sim_seed
    processors = {name: SimulatedProcessor(name, engine, faults, clock, seed=None if seed is None else seed + i)
                  for i, name in enumerate(settings.payments_processors)}
    rates = SimulatedRateService(faults, seed=None if seed is None else seed + 100)
    return build_sim_app(processors, rates)


def build_payments(settings: Settings, engine: Engine, clock: Clock, registry=None):
    from .orders.payments_service import build_payments_service

    return build_payments_service(settings, engine, clock, registry=registry,
                                  sim_engine=simulator_engine(settings, engine))


_RESTOCK_CACHE_LOCK = threading.Lock()


def restock_model_cache(container: Container):
    """The container's restock model cache (``services["restock.cache"]``), made on first use from the
    ``restock_refit_days`` / ``restock_cache_*`` settings; ``None`` when ``restock_cache_models`` is 0. Plans built
    from this container (API, CLI, dashboard) share it."""
    s = container.settings
    if s.restock_cache_models <= 0:
        return None
    with _RESTOCK_CACHE_LOCK:
        cache = container.services.get("restock.cache")
        if cache is None:
            from .planning.restock_cache import RestockModelCache

            cache = container.services["restock.cache"] = RestockModelCache(
                refit_days=s.restock_refit_days, max_models=s.restock_cache_models,
                max_level_bytes=s.restock_cache_mb << 20, directory=s.restock_cache_dir)
        return cache


def build_restock_planner(container: Container) -> RestockPlanner:
    """The restock planner over a Container's database and clock (one registered as ``services["restock"]`` wins).
    Its fitted model and replayed levels are kept in the container between plans (:func:`restock_model_cache`).

    The policy file is read on each call, so edits apply without a restart.
    """
    from .planning.restock import PolicyBook
    from .planning.restock_service import RestockPlanner
    from .store.restock import RestockRepository

    registered = container.services.get("restock")
    if registered is not None:
        return registered
    s = container.settings
    return RestockPlanner(
        cache=restock_model_cache(container),
        source=RestockRepository(container.engine),
        policies=PolicyBook.load(s.restock_policy_file),
        clock=container.clock,
        history_days=s.restock_history_days,
        outlook_days=s.restock_outlook_days,
        risk_threshold=s.restock_risk_threshold,
        max_alternatives=s.restock_max_alternatives,
    )


def build_fulfillment_analytics(container: Container) -> FulfillmentAnalytics:
    """Fulfillment and returns analytics over the container's database (one registered as
    ``services["fulfillment.analytics"]`` wins)."""
    registered = container.services.get("fulfillment.analytics")
    if registered is not None:
        return registered
    from .store.analytics import SqlFulfillmentAnalytics

    analytics = container.services["fulfillment.analytics"] = SqlFulfillmentAnalytics(
        container.engine, parallel=container.settings.analytics_parallel)
    return analytics


def build_worker(container: Container):
    """The outbox worker with every side-effect handler registered."""
    from .orders import OutboxWorker, WarehouseHandoff

    s = container.settings
    worker = OutboxWorker(
        container.engine, container.clock,
        batch_size=s.outbox_batch_size, max_attempts=s.outbox_max_attempts,
        backoff_base_s=s.outbox_backoff_base_s, backoff_max_s=s.outbox_backoff_max_s,
        concurrency=s.outbox_concurrency, lease_s=s.outbox_lease_s,
    )
    from .orders.payment_flow import (
        PAYMENT_CAPTURED,
        ConfirmationMail,
        ShippingReconcile,
        WarehouseWebhookDelivery,
        payment_handlers,
    )

    engine, clock = container.engine, container.clock
    payments = container.services["payments"]
    settlement = container.services["buy_path"].settlement
    for handler in payment_handlers(engine, clock, payments, settlement,
                                    inline_grace_s=s.payments_checkout_budget_s + 5.0):
        worker.add_handler(handler)
    worker.add_handler(ConfirmationMail(engine, payments.mailer))
    worker.add_handler(ShippingReconcile(engine, clock, payments.shipping))
    worker.add_handler(WarehouseHandoff(engine, clock, frozenset({PAYMENT_CAPTURED}), frozenset({"captured"})))
    if payments.webhook is not None:
        worker.add_handler(WarehouseWebhookDelivery(engine, clock, payments.webhook))
    from .integrations import WebhookFanout

    worker.add_handler(WebhookFanout(engine, clock))
    worker.add_handler(build_integrations(container)["integrations.shopify"])
    observer = container.services["buy_path"].observer
    if observer is not None:
        from .orders.outbox import FunctionHandler
        from .orders.payment_flow import ORDER_HANDED_OFF, PAYMENT_AUTHORIZED

        def funnel_stage(event) -> None:
            latency_ms = (clock.now() - event.created_at).total_seconds() * 1000.0
            if event.type == PAYMENT_AUTHORIZED:
                observer.stage("order_confirmed", latency_ms)
                observer.metrics.order_confirmation.observe(latency_ms / 1000.0)
            else:
                observer.stage("warehouse_handoff", latency_ms)
                for wh in event.payload.get("warehouses", []):
                    observer.metrics.warehouse_handoffs.labels(warehouse=wh).inc()
            observer.buffer.flush()

        worker.add_handler(FunctionHandler("funnel_stages", frozenset({PAYMENT_AUTHORIZED, ORDER_HANDED_OFF}),
                                           funnel_stage))
    return worker


def build_integrations(container: Container) -> dict[str, Any]:
    """Outbound webhook subscriptions and dispatcher, the Shopify integration and the imported-order writer
    (registered once in ``container.services``)."""
    if "webhooks.subscriptions" in container.services:
        return container.services
    from .integrations import (
        HttpxSender,
        OrderWriter,
        ShopifyIntegration,
        TargetGuard,
        WebhookDispatcher,
        WebhookSubscriptions,
    )

    s = container.settings
    writer = OrderWriter(container.engine, container.clock, stock_low_at=s.stock_low_threshold)
    container.services["integrations.order_writer"] = writer
    container.services["integrations.shopify"] = ShopifyIntegration(
        container.engine, container.clock, writer, max_age_s=s.shopify_webhook_max_age_s)
    guard = TargetGuard(s.webhook_allowed_host_set)
    container.services["webhooks.subscriptions"] = WebhookSubscriptions(container.engine, container.clock, guard)
    alerts = container.services.get("tower.repository")
    container.services["webhooks.dispatcher"] = WebhookDispatcher(
        container.engine, container.clock, HttpxSender(s.webhook_timeout_s), guard, alerts=alerts,
        endpoint_concurrency=s.webhook_endpoint_concurrency, threads=s.webhook_dispatch_threads,
        timeout_s=s.webhook_timeout_s, max_client_error_attempts=s.webhook_max_client_error_attempts,
        disable_after_s=s.webhook_disable_after_s, max_retry_after_s=s.webhook_max_retry_after_s)
    return container.services


def build_edge_purger(container: Container, layout=None, on_purge=None):
    """The edge purger: stock bands and prices from the primary, refreshes through the nginx nodes of ``layout``
    (default: the one the settings describe)."""
    from .edge import EdgeLayout, NginxPurgeTarget, PurgeWatcher, band_boundaries
    from .store.storefront import SqlPageSource

    s = container.settings
    layout = layout or EdgeLayout.from_settings(s)
    target = NginxPurgeTarget(layout, layout.purge_token())
    container.services["edge.purge_target"] = target
    boundaries = band_boundaries(s.promise_limited_threshold, s.storefront_risk_units, s.storefront_plenty_units)
    return PurgeWatcher(SqlPageSource(container.engine), target, boundaries, on_purge=on_purge)


class _PlannerCapacitySource:
    """Binds :class:`~shopfloor.planning.capacity_service.PlannerCapacitySource` without importing the planning
    modules (pandas) until a rule scales."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._source = None

    def _get(self):
        if self._source is None:
            from .planning.capacity_service import PlannerCapacitySource

            self._source = PlannerCapacitySource(self.container)
        return self._source

    def current_replicas(self) -> int | None:
        return self._get().current_replicas()

    def capacity_plan(self) -> dict:
        return self._get().capacity_plan()


class EdgeCacheWarmer:
    """The tower's ``CacheWarmer``: the capacity plan's warm list (or the URLs a rule names) through every edge node
    for each ``edge_warm_destinations`` entry."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def warm_list(self) -> list[dict]:
        from .planning.capacity_service import service_for

        svc = service_for(self.container)
        entries, _source = svc.warm_list(svc.plan())
        return [e.to_dict() for e in entries]

    def warm(self, urls: list[str] | None = None, progress=None) -> dict:
        from .edge import EdgeLayout, EdgeWarmer, parse_destinations, warm_paths

        s = self.container.settings
        entries = [{"url": u} for u in urls] if urls else self.warm_list()
        if urls:  # a product URL a rule names is warmed for every destination too
            import re

            entries = [{"kind": "product", "sku": m.group(1)} if (m := re.match(r"^/v1/products/([^/?]+)", u))
                       else {"url": u} for u in urls]
        paths = warm_paths(entries, parse_destinations(s.edge_warm_destinations))
        return EdgeWarmer(EdgeLayout.from_settings(s)).warm(paths, progress=progress)
