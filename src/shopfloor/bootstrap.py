"""The one place that builds concrete adapters and wires them together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from .config import Settings
from .domain.clock import Clock, SystemClock
from .store.engine import make_engine


@dataclass
class Container:
    """Everything a process needs, built once. Routes and commands receive it; nothing reads globals."""

    settings: Settings
    engine: Engine
    clock: Clock
    # Area services by name ("buy_path", "payments", "promise", ...); see build_container.
    services: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for svc in self.services.values():
            close = getattr(svc, "close", None)
            if callable(close):
                close()
        self.engine.dispose()


def build_container(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    """Build engine, clock and services from settings. Opens no connection and starts no thread."""
    from .orders import BuyPath, CheckoutService

    settings = settings or Settings()
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    container = Container(settings=settings, engine=engine, clock=clock)
    checkout = CheckoutService(
        engine, clock,
        reservation_ttl_s=settings.reservation_ttl_s,
        batch_max_size=settings.batch_max_size,
        batch_max_wait_ms=settings.batch_max_wait_ms,
    )
    container.services["buy_path"] = BuyPath(checkout)
    return container


def build_worker(container: Container):
    """The outbox worker with every side-effect handler registered."""
    from .domain.orders import ORDER_PLACED
    from .orders import OutboxWorker, WarehouseHandoff

    s = container.settings
    worker = OutboxWorker(
        container.engine, container.clock,
        batch_size=s.outbox_batch_size, max_attempts=s.outbox_max_attempts,
        backoff_base_s=s.outbox_backoff_base_s, backoff_max_s=s.outbox_backoff_max_s,
    )
    worker.add_handler(
        WarehouseHandoff(container.engine, container.clock, frozenset({ORDER_PLACED}),
                         frozenset({"payment_pending", "authorized", "captured"}))
    )
    return worker
