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
    # Area services register here by name (e.g. "checkout", "promise", "payments"); see build_container.
    services: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for svc in self.services.values():
            close = getattr(svc, "close", None)
            if callable(close):
                close()
        self.engine.dispose()


def build_container(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    """Build engine, clock and services from settings. Opens no connection until first use."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url)
    return Container(settings=settings, engine=engine, clock=clock or SystemClock())
