"""Bot-pattern alerts from the checkout: the detector's findings become tower alerts and a metric."""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Protocol

from ..domain.clock import Clock
from ..waitroom import BotPatternDetector

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    def add_alert(self, *, at, source: str, metric: str, kind: str, message: str = "", observed=None,
                  **kw) -> int: ...


class BotAlerts:
    """Per process: each server process sees its own share of the traffic, so with N processes a pattern needs
    about N times the threshold before one process reports it (the thresholds are settings)."""

    def __init__(self, detector: BotPatternDetector, sink: AlertSink, clock: Clock, metrics=None) -> None:
        self.detector = detector
        self.sink = sink
        self.clock = clock
        self.metrics = metrics

    async def observe(self, address: str | None, card: str | None, skus: Iterable[str], refused: bool) -> None:
        now, patterns = self.note(address, card, skus, refused)
        if patterns:
            await self.store(now, patterns)

    def note(self, address: str | None, card: str | None, skus: Iterable[str], refused: bool) -> tuple:
        """The detector's part of :meth:`observe`, without waiting: (now, new patterns) -- counted and logged
        here; the caller stores them with :meth:`store` (the crowd's cheapest answers call this from a protocol
        callback, where nothing can be awaited)."""
        now = self.clock.now()
        patterns = self.detector.observe(now.timestamp(), address, card, skus, refused)
        for pattern in patterns:
            if self.metrics is not None:
                self.metrics.bot_patterns.labels(kind=pattern.kind).inc()
            log.warning("%s", pattern.message())
        return now, patterns

    async def store(self, now, patterns) -> None:
        for pattern in patterns:
            try:  # the alert row is written off the event loop
                await asyncio.get_running_loop().run_in_executor(None, lambda p=pattern: self.sink.add_alert(
                    at=now, source="waitroom", metric=f"bot_{p.kind}", kind="bot_pattern", message=p.message(),
                    observed=float(p.addresses)))
            except Exception:  # noqa: BLE001 - an alert that could not be stored must not fail the checkout
                log.exception("could not store the bot-pattern alert")
