"""Promises degraded by the control tower: a rule's ``degrade_promises`` action widens a warehouse's promises."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence


class RuleDegradedEngine:
    """Wraps a :class:`PromiseEngine`: promises shipped from a warehouse under an active degradation get
    ``extra_days`` added to ``ship_by``/``deliver_by``, are marked provisional, and say why. Everything else is
    delegated. Degradations are re-read at most every ``ttl_s`` seconds (they change rarely)."""

    def __init__(self, engine: Any, lookup: Callable[[datetime], dict[str, dict]], clock, ttl_s: float = 5.0):
        self._engine = engine
        self._lookup = lookup
        self._clock = clock
        self._ttl_s = ttl_s
        self._cached: tuple[float, dict[str, dict]] = (-1e9, {})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _active(self) -> dict[str, dict]:
        at, value = self._cached
        if time.monotonic() - at > self._ttl_s:
            value = self._lookup(self._clock.now())
            self._cached = (time.monotonic(), value)
        return value

    def _apply(self, promise: Any) -> Any:
        deg = self._active().get(promise.warehouse) if promise.warehouse else None
        if not deg or promise.deliver_by is None:
            return promise
        extra = timedelta(days=int(deg.get("extra_days", 0)))
        return dataclasses.replace(
            promise,
            ship_by=promise.ship_by + extra if promise.ship_by else None,
            deliver_by=promise.deliver_by + extra,
            provisional=True,
            reasons=tuple(promise.reasons) + (f"degraded_by_rule:{deg.get('reason', 'control tower')}",),
        )

    def promise_for(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply(self._engine.promise_for(*args, **kwargs))

    def promise_for_order(self, *args: Any, **kwargs: Any) -> list:
        return [self._apply(p) for p in self._engine.promise_for_order(*args, **kwargs)]

    def promises_for(self, requests: Sequence, at: datetime | None = None) -> list:
        return [self._apply(p) for p in self._engine.promises_for(requests, at)]
