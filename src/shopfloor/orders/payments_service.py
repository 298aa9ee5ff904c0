"""``PaymentsService``: the payments area as one object (router, simulated gateways, rate quoter, side effects).

``build_payments_service(settings, engine, clock)`` is called once per process by bootstrap and registered as
``container.services["payments"]``. It opens no connection and starts no thread until first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, and_, delete, select, update

from ..config import Settings
from ..domain.clock import Clock
from ..payments import (
    AuthorizationResult,
    BreakerPolicy,
    PaymentAttempt,
    PaymentProcessor,
    PaymentRouter,
    RouterPolicy,
)
from ..simulators import (
    RATES_SERVICE,
    FaultConfig,
    FaultPatch,
    FaultStore,
    SimulatedProcessor,
    SimulatedRateService,
)
from ..simulators import ledger as sim_ledger
from ..store.payments_tables import payment_processor_health, payments_runtime
from .fraud import FraudScreen, policy_from_settings
from .notify import ConfirmationMailer, build_mailer
from .runtime_config import SharedJsonStore
from .shipping import ProvisionalRateTable, RateQuoter, ShippingQuoter
from .webhooks import WarehouseWebhook, build_warehouse_webhook

PROCESSOR_ORDER_KEY = "processor_order"


class ProcessorHealthStore:
    """Persists each process's breaker snapshot so the CLI can show what the servers see."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def write(self, instance: str, snapshot: list[dict[str, Any]]) -> None:
        now = self._clock.now()
        t = payment_processor_health
        with self._engine.begin() as conn:
            for item in snapshot:
                values = {
                    "breaker_state": item["breaker_state"],
                    "window_calls": item["window_calls"],
                    "window_failures": item["window_failures"],
                    "window_failure_pct": item["window_failure_pct"],
                    "counters": item["counters"],
                    "updated_at": now,
                }
                where = and_(t.c.instance == instance, t.c.processor == item["processor"])
                if conn.execute(update(t).where(where).values(**values)).rowcount == 0:
                    conn.execute(t.insert().values(instance=instance, processor=item["processor"], **values))

    def read(self, *, max_age_s: float | None = None) -> list[dict[str, Any]]:
        t = payment_processor_health
        q = select(t).order_by(t.c.processor, t.c.instance)
        if max_age_s is not None:
            q = q.where(t.c.updated_at >= self._clock.now() - timedelta(seconds=max_age_s))
        with self._engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
            conn.rollback()
        return rows

    def prune(self, *, older_than_s: float) -> int:
        t = payment_processor_health
        cutoff = self._clock.now() - timedelta(seconds=older_than_s)
        with self._engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.updated_at < cutoff)).rowcount


class PaymentsService:
    """Facade the routes, checkout and the worker use.

    * ``router`` - :class:`PaymentRouter` (authorize / capture / void / status, breakers, metrics)
    * ``faults`` - :class:`FaultStore` for the simulated services (``None`` when real adapters are used)
    * ``shipping`` - :class:`ShippingQuoter` (inline quote with provisional fallback, reconcile)
    * ``mailer`` - :class:`ConfirmationMailer`; ``webhook`` - :class:`WarehouseWebhook` or ``None``;
      ``fraud`` - :class:`FraudScreen`
    """

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        router: PaymentRouter,
        shipping: ShippingQuoter,
        faults: FaultStore | None,
        order_store: SharedJsonStore,
        health_store: ProcessorHealthStore,
        mailer: ConfirmationMailer,
        webhook: WarehouseWebhook | None,
        fraud: FraudScreen,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.router = router
        self.shipping = shipping
        self.faults = faults
        self._order_store = order_store
        self.health_store = health_store
        self.mailer = mailer
        self.webhook = webhook
        self.fraud = fraud
        self.sim_engine: Engine | None = None

    # -- payments -----------------------------------------------------------------------------------------------
    def authorize_inline(self, attempt: PaymentAttempt, **kw: Any) -> AuthorizationResult:
        """Authorize within the checkout budget (``payments_checkout_budget_s``)."""
        return self.router.authorize(attempt, budget_s=self.settings.payments_checkout_budget_s, **kw)

    async def authorize_inline_async(self, attempt: PaymentAttempt) -> AuthorizationResult:
        """:meth:`authorize_inline` awaited on the running event loop (the checkout): no thread per call."""
        return await self.router.authorize_async(attempt, budget_s=self.settings.payments_checkout_budget_s)

    def authorize_retry(self, attempt: PaymentAttempt, **kw: Any) -> AuthorizationResult:
        """Authorize from the worker (longer budget ``payments_worker_budget_s``), same key and suspects."""
        return self.router.authorize(attempt, budget_s=self.settings.payments_worker_budget_s, **kw)

    def processor_names(self) -> list[str]:
        return self.router.processor_names

    def processor_order(self) -> list[str]:
        return self.router.order()

    def set_processor_order(self, names: Sequence[str]) -> list[str]:
        return self.router.set_order(names)

    def health(self) -> list[dict[str, Any]]:
        return self.router.health()

    # -- simulated services -------------------------------------------------------------------------------------
    def _faults_or_fail(self) -> FaultStore:
        if self.faults is None:
            raise LookupError("fault injection is only available for the simulated services")
        return self.faults

    def get_faults(self, name: str) -> FaultConfig:
        return self._faults_or_fail().get(name)

    def set_faults(self, name: str, patch: FaultPatch) -> FaultConfig:
        return self._faults_or_fail().put(name, patch)

    def ledger(self, processor: str) -> list[dict[str, Any]]:
        return sim_ledger(self.sim_engine or self.engine, processor)

    def close(self) -> None:
        self.router.flush_health()
        self.router.close()
        self.shipping.close()
        if self.webhook is not None:
            self.webhook.close()


def build_payments_service(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    *,
    registry: CollectorRegistry | None = None,
    processors: dict[str, PaymentProcessor] | None = None,
    rate_quoter: RateQuoter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    sim_engine: Engine | None = None,
) -> PaymentsService:
    """Build the payments area for one process.

    By default the processors named in ``settings.payments_processors`` are simulated ones sharing the ledger in
    ``engine``; pass ``processors`` / ``rate_quoter`` to plug in real adapters (see docs/payments.md).
    """
    ttl = settings.payments_runtime_cache_ttl_s
    sim = sim_engine or engine  # the simulators are another system; they may keep their ledger elsewhere
    faults: FaultStore | None = None
    if processors is None or rate_quoter is None:
        faults = FaultStore(sim, clock, defaults=settings.payments_sim_faults, ttl_s=ttl)
    if settings.payments_sim_url and processors is None:
        # The simulators run as their own process (``shopfloor simulate serve``, on the same database: this
        # process's fault controls and ledger views read and write the tables it uses).
        from ..simulators import HttpProcessor, HttpRateQuoter

        processors = {name: HttpProcessor(name, settings.payments_sim_url) for name in settings.payments_processors}
        if rate_quoter is None:
            rate_quoter = HttpRateQuoter(settings.payments_sim_url)
    if processors is None:
        seed = settings.payments_sim_seed
        processors = {
            name: SimulatedProcessor(
                name, sim, faults, clock, seed=None if seed is None else seed + i, sleep=sleep
            )
            for i, name in enumerate(settings.payments_processors)
        }
    if rate_quoter is None:
        seed = settings.payments_sim_seed
        rate_quoter = SimulatedRateService(faults, seed=None if seed is None else seed + 100, sleep=sleep)

    order_store = SharedJsonStore(
        engine, payments_runtime, key_column="key", value_column="value", clock=clock, ttl_s=ttl
    )
    health_store = ProcessorHealthStore(engine, clock)
    breaker_policy = BreakerPolicy(
        window_s=settings.payments_breaker_window_s,
        min_calls=settings.payments_breaker_min_calls,
        failure_pct=settings.payments_breaker_failure_pct,
        open_s=settings.payments_breaker_open_s,
        half_open_probes=settings.payments_breaker_half_open_probes,
    )
    policy = RouterPolicy(
        call_timeout_s=settings.payments_call_timeout_s,
        status_timeout_s=settings.payments_status_timeout_s,
        breaker=breaker_policy,
        health_snapshot_interval_s=settings.payments_health_snapshot_interval_s,
        threads=settings.payments_call_threads,
    )
    router_box: list[PaymentRouter] = []

    def order_source() -> list[str]:
        # Asked on every authorization, on the server's event loop too: never waits on the database once read.
        stored = order_store.get_nowait(PROCESSOR_ORDER_KEY)
        return list(stored) if stored else list(settings.payments_processors)

    def health_sink(snapshot: list[dict[str, Any]]) -> None:
        health_store.write(router_box[0].instance, snapshot)

    router = PaymentRouter(
        processors,
        policy=policy,
        order_source=order_source,
        order_sink=lambda names: order_store.put(PROCESSOR_ORDER_KEY, list(names)),
        registry=registry,
        health_sink=health_sink,
    )
    router_box.append(router)
    shipping = ShippingQuoter(
        rate_quoter,
        ProvisionalRateTable.from_settings(settings.shipping_provisional_rates),
        clock=clock,
        timeout_s=settings.shipping_quote_timeout_s,
        reconcile_timeout_s=settings.shipping_reconcile_timeout_s,
        cache_ttl_s=settings.shipping_quote_cache_ttl_s,
        # A failed quote costs the checkout a full timeout while the provisional table answers at once, so the
        # rate breaker also trips on a run of failures instead of waiting for the window's percentage.
        breaker_policy=replace(breaker_policy,
                               consecutive_failures=settings.shipping_breaker_consecutive_failures),
    )
    service = PaymentsService(
        settings=settings,
        engine=engine,
        clock=clock,
        router=router,
        shipping=shipping,
        faults=faults,
        order_store=order_store,
        health_store=health_store,
        mailer=build_mailer(settings, engine, clock),
        webhook=build_warehouse_webhook(settings, clock),
        fraud=FraudScreen(
            engine, policy_from_settings(settings), clock, history_orders=settings.fraud_history_orders
        ),
    )
    service.sim_engine = sim
    return service


__all__ = [
    "PaymentsService",
    "ProcessorHealthStore",
    "build_payments_service",
    "RATES_SERVICE",
]
