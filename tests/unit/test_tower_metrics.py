"""Prometheus metrics: names, labels and histograms on a passed-in registry; the Grafana dashboard uses them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from shopfloor.tower.metrics import FunnelMetrics, render_latest

ROOT = Path(__file__).resolve().parents[2]


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_funnel_metrics_write_to_the_registry_they_are_given():
    reg = CollectorRegistry()
    m = FunnelMetrics(reg)
    m.observe_checkout("ok", 0.12)
    m.observe_checkout("out_of_stock", 0.03)
    m.observe_payment("stripe", "declined")
    m.reservations.labels(outcome="ok").inc()
    m.promise_lookups.inc(3)
    m.order_confirmation.observe(1.5)
    m.warehouse_handoffs.labels(warehouse="wh-1").inc()
    m.fulfillment_events.labels(type="delivered").inc()
    m.observe_storefront({"page_view": 5, "add_to_cart": 1}, [0.8, 1.2])
    m.observe_http("/v1/checkout", "POST", 201, 0.05)
    text = exposition(reg)
    for line in (
        'shopfloor_checkout_attempts_total{outcome="ok"} 1.0',
        'shopfloor_checkout_latency_seconds_count 2.0',
        'shopfloor_checkout_payments_total{outcome="declined",processor="stripe"} 1.0',
        'shopfloor_reservations_total{outcome="ok"} 1.0',
        'shopfloor_promise_lookups_total 3.0',
        'shopfloor_order_confirmation_seconds_bucket{le="2.5"} 1.0',
        'shopfloor_warehouse_handoffs_total{warehouse="wh-1"} 1.0',
        'shopfloor_fulfillment_events_total{type="delivered"} 1.0',
        'shopfloor_storefront_events_total{type="page_view"} 5.0',
        'shopfloor_http_requests_total{method="POST",route="/v1/checkout",status="201"} 1.0',
        'shopfloor_http_request_seconds_bucket{le="0.05",route="/v1/checkout"} 1.0',
    ):
        assert line in text, line
    # nothing leaks into another registry (no global default registry is involved)
    assert 'shopfloor_checkout_attempts_total{outcome="ok"}' not in exposition(FunnelMetrics(CollectorRegistry()).registry)


def test_every_grafana_query_uses_a_metric_we_export():
    from shopfloor.payments import PaymentMetrics

    reg = CollectorRegistry()
    FunnelMetrics(reg)
    PaymentMetrics(reg)  # the app exposes both on one registry
    from tests.unit.test_fulfillment_rules import T0, FixedAnalytics, _report

    from shopfloor.domain.clock import FixedClock
    from shopfloor.tower.fulfillment_signals import FulfillmentAnalyticsCollector, FulfillmentSignals

    analytics = FulfillmentAnalyticsCollector(FulfillmentSignals(FixedAnalytics(_report()), FixedClock(T0)))
    exported = set()
    for fam in [*reg.collect(), *analytics.collect()]:
        suffixes = ("_total",) if fam.type == "counter" else ("",) if fam.type == "gauge" else \
            ("_bucket", "_sum", "_count")
        exported |= {fam.name + s for s in suffixes}
    dash = json.loads((ROOT / "deploy" / "grafana" / "shopfloor.json").read_text())
    used = set()
    for panel in dash["panels"]:
        for t in panel["targets"]:
            used |= set(re.findall(r"shopfloor_[a-z0-9_]+", t["expr"]))
    assert used and used <= exported, used - exported
    assert len(dash["panels"]) >= 12


def test_multiprocess_mode_merges_every_workers_samples(tmp_path):
    script = (
        "from shopfloor.tower.metrics import FunnelMetrics, render_latest\n"
        "from prometheus_client import CollectorRegistry\n"
        "m = FunnelMetrics(CollectorRegistry()); m.observe_checkout('ok', 0.1)\n"
        "print(render_latest(CollectorRegistry())[0].decode())\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    outs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert 'shopfloor_checkout_attempts_total{outcome="ok"} 2.0' in outs[1]


def test_without_multiprocess_the_process_registry_is_rendered():
    reg = CollectorRegistry()
    FunnelMetrics(reg).promise_lookups.inc()
    body, content_type = render_latest(reg)
    assert b"shopfloor_promise_lookups_total 1.0" in body and content_type.startswith("text/plain")


def test_http_middleware_labels_requests_by_route_template():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shopfloor.tower.metrics import http_metrics_middleware

    reg = CollectorRegistry()
    metrics = FunnelMetrics(reg)
    app = FastAPI()
    app.middleware("http")(http_metrics_middleware(metrics))

    @app.get("/v1/skus/{sku}/alternatives")
    def alternatives(sku: str) -> dict:
        return {"sku": sku}

    with TestClient(app) as client:
        client.get("/v1/skus/A-1/alternatives")
        client.get("/v1/skus/B-2/alternatives")
        client.get("/nowhere")
    text = exposition(reg)
    assert 'shopfloor_http_requests_total{method="GET",route="/v1/skus/{sku}/alternatives",status="200"} 2.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
