"""Prometheus metrics for the whole funnel, on a registry passed in (never the global default).

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (several uvicorn workers), each process writes its
samples there and :func:`collector_registry_for_scrape` builds the registry ``/metrics`` should expose, which merges
every worker's files. Gauges are not used, so no multiprocess gauge mode has to be chosen.
"""

from __future__ import annotations

import os
from typing import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIRMATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class FunnelMetrics:
    """Counters and histograms for every funnel stage. Build one per process with the registry to write to."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "shopfloor") -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self._children: dict[tuple, object] = {}
        self.checkout_attempts = Counter("checkout_attempts", "Checkout attempts by outcome.", ["outcome"],
                                         namespace=ns, registry=r)
        self.checkout_latency = Histogram("checkout_latency_seconds", "Checkout request latency.",
                                          namespace=ns, registry=r, buckets=LATENCY_BUCKETS)
        self.promise_lookups = Counter("promise_lookups", "Promise lookups served.", namespace=ns, registry=r)
        self.reservations = Counter("reservations", "Stock reservations by outcome.", ["outcome"],
                                    namespace=ns, registry=r)
        # Per-call processor metrics (shopfloor_payment_*) come from the payment router; this counts each
        # checkout's final payment outcome by the processor that settled it.
        self.payment_attempts = Counter("checkout_payments", "Checkout payment outcomes by processor.",
                                        ["processor", "outcome"], namespace=ns, registry=r)
        self.order_confirmation = Histogram("order_confirmation_seconds",
                                            "Time from checkout start to order confirmation.",
                                            namespace=ns, registry=r, buckets=CONFIRMATION_BUCKETS)
        self.warehouse_handoffs = Counter("warehouse_handoffs", "Orders handed to a warehouse.", ["warehouse"],
                                          namespace=ns, registry=r)
        self.fulfillment_events = Counter("fulfillment_events", "Fulfillment events by type.", ["type"],
                                          namespace=ns, registry=r)
        self.storefront_events = Counter("storefront_events", "Storefront beacon events by type.", ["type"],
                                         namespace=ns, registry=r)
        self.storefront_page_load = Histogram("storefront_page_load_seconds", "Page-load time from beacons.",
                                              namespace=ns, registry=r,
                                              buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0))
        self.http_requests = Counter("http_requests", "HTTP requests by route template, method and status.",
                                     ["route", "method", "status"], namespace=ns, registry=r)
        self.http_request_seconds = Histogram("http_request_seconds", "HTTP request latency by route template.",
                                              ["route"], namespace=ns, registry=r, buckets=LATENCY_BUCKETS)
        # Flash sales: each waiting-room decision (admitted, queued, sold_out, token_expired, token_used) and each
        # rate-limit refusal by the limit that refused. Admission rate = rate(waitroom_decisions{outcome="admitted"}).
        self.waitroom_decisions = Counter("waitroom_decisions", "Waiting-room decisions by product and outcome.",
                                          ["sku", "outcome"], namespace=ns, registry=r)
        self.bot_patterns = Counter("bot_patterns", "Bot patterns detected at checkout (one_card, one_product).",
                                    ["kind"], namespace=ns, registry=r)
        self.rate_limit_refusals = Counter("rate_limit_refusals", "Requests refused by a rate limit.", ["limit"],
                                           namespace=ns, registry=r)

    # Small helpers so call sites read as sentences and label values stay consistent.
    def _child(self, metric: str, *labels: str):
        """``getattr(self, metric).labels(*labels)``, looked up once per label set (every checkout uses three)."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self, metric).labels(*labels)
        return child

    def observe_checkout(self, outcome: str, seconds: float) -> None:
        self._child("checkout_attempts", outcome).inc()
        self.checkout_latency.observe(seconds)

    def observe_reservation(self, outcome: str) -> None:
        self._child("reservations", outcome).inc()

    def observe_payment(self, processor: str, outcome: str) -> None:
        self._child("payment_attempts", processor, outcome).inc()

    def observe_storefront(self, counts: Mapping[str, int], page_loads_s: list[float] | None = None) -> None:
        for kind, n in counts.items():
            self.storefront_events.labels(type=kind).inc(n)
        for s in page_loads_s or ():
            self.storefront_page_load.observe(s)

    def observe_fulfillment(self, counts) -> None:
        """New fulfillment events stored, as ``(type, n)`` pairs."""
        for kind, n in counts:
            self.fulfillment_events.labels(type=kind).inc(n)

    def observe_waitroom(self, sku: str, outcome: str) -> None:
        child = self._children.get(("wr", sku, outcome))
        if child is None:
            child = self._children[("wr", sku, outcome)] = self.waitroom_decisions.labels(sku=sku, outcome=outcome)
        child.inc()

    def observe_rate_refusal(self, limit: str) -> None:
        self.rate_limit_refusals.labels(limit=limit).inc()

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        # Every request passes here: the labelled children are looked up once per label set, not per request
        # (labels() costs a few microseconds; the label sets are bounded: route templates, methods, statuses).
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.http_requests.labels(route=route, method=method,
                                                                        status=str(status)),
                                              self.http_request_seconds.labels(route=route))
        children[0].inc()
        children[1].observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def build_metrics(registry: CollectorRegistry | None = None) -> FunnelMetrics:
    """The process's metrics. In multiprocess mode the values go to files, so any registry works for writing."""
    return FunnelMetrics(registry if registry is not None else CollectorRegistry())


def collector_registry_for_scrape(process_registry: CollectorRegistry) -> CollectorRegistry:
    """The registry ``/metrics`` exposes: all workers' files in multiprocess mode, else this process's registry."""
    path = multiprocess_dir()
    if not path:
        return process_registry
    from prometheus_client import multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)
    return merged


def render_latest(registry: CollectorRegistry, extra: tuple = ()) -> tuple[bytes, str]:
    """Body and content type for a ``/metrics`` response. ``extra`` collectors (computed at scrape time from the
    database, the same in every process) are appended after the process or multiprocess metrics."""
    body = generate_latest(collector_registry_for_scrape(registry))
    for collector in extra:
        body += generate_latest(collector)
    return body, CONTENT_TYPE_LATEST


def http_metrics_middleware(metrics: FunnelMetrics):
    """A function for ``app.middleware("http")`` that counts requests and times them by route *template*
    (``/v1/skus/{sku}/alternatives``, not the raw path, so label cardinality stays bounded)."""
    import time

    async def middleware(request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe_http(template, request.method, status, time.perf_counter() - started)

    return middleware
