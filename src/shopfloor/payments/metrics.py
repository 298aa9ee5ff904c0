"""Prometheus metrics of the payment processors' calls."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class PaymentMetrics:
    """Prometheus metrics per processor. One set per registry, so building many routers never re-registers."""

    _by_registry: dict[int, tuple[CollectorRegistry, PaymentMetrics]] = {}
    _lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "shopfloor_payment_attempts_total",
            "Calls made to a payment processor.",
            ["processor", "operation"],
            registry=registry,
        )
        self.outcomes = Counter(
            "shopfloor_payment_outcomes_total",
            "Outcomes of payment processor calls (approved, declined, not_charged, unknown, breaker_open).",
            ["processor", "operation", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "shopfloor_payment_latency_seconds",
            "Latency of payment processor calls.",
            ["processor", "operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=registry,
        )
        self.breaker_state = Gauge(
            "shopfloor_payment_breaker_state",
            "Breaker state per processor: 0 closed, 1 half-open, 2 open.",
            ["processor"],
            registry=registry,
        )

        # Labelled children by label values: ``labels()`` costs a few microseconds and every processor call used
        # three of them. The label sets are bounded (processors x operations x outcomes).
        self._children: dict[tuple, object] = {}

    def child(self, metric: str, *labels: str):
        """``getattr(self, metric).labels(*labels)``, looked up once per label set."""
        key = (metric, *labels)
        hit = self._children.get(key)
        if hit is None:
            hit = self._children[key] = getattr(self, metric).labels(*labels)
        return hit

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> PaymentMetrics:
        registry = registry if registry is not None else REGISTRY
        with cls._lock:
            hit = cls._by_registry.get(id(registry))
            if hit is not None and hit[0] is registry:
                return hit[1]
            metrics = cls(registry)
            cls._by_registry[id(registry)] = (registry, metrics)
            return metrics
