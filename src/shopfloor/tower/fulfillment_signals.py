"""Control-tower signals from the fulfillment and returns analytics (one report per window, shared by every name
asked in a tick), and the return reasons behind a SKU for ``flag_listing``."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from ..domain.clock import Clock
from ..fulfillment.analytics import FulfillmentAnalytics, FulfillmentReport


def signal_key(entity_id: str) -> str:
    """How an id appears in a signal name: ``de-central`` -> ``de_central``, ``FLASH-001`` -> ``FLASH_001``."""
    return entity_id.replace("-", "_").replace(".", "_")


#: Per-SKU and per-warehouse signals this provider answers, by prefix.
SKU_SIGNALS = ("return_rate_", "listing_return_rate_", "backorder_rate_", "inventory_age_p50_d_", "units_sold_")
WAREHOUSE_SIGNALS = ("split_rate_", "pack_p90_h_", "pack_p50_h_", "handoff_delay_p50_h_")


class FulfillmentSignals:
    """``return_rate_<sku>``, ``listing_return_rate_<sku>`` (fit and not_as_described), ``backorder_rate_<sku>``,
    ``inventory_age_p50_d_<sku>``, ``units_sold_<sku>``, ``split_rate_<warehouse>``, ``pack_p90_h_<warehouse>``
    (and ``pack_p50_h_``, ``handoff_delay_p50_h_``) over the last ``window_days``. The report is computed at most
    once per ``ttl_s``. A measure with nothing behind it (no sales, no packed orders) has no value."""

    def __init__(self, analytics: FulfillmentAnalytics, clock: Clock, *, window_days: int = 30,
                 ttl_s: float = 60.0) -> None:
        self.analytics, self.clock = analytics, clock
        self.window_days, self.ttl_s = window_days, ttl_s
        self._report: FulfillmentReport | None = None
        self._at = float("-inf")
        self._lock = threading.Lock()

    def report(self) -> FulfillmentReport:
        with self._lock:
            if self._report is None or time.monotonic() - self._at >= self.ttl_s:
                until = self.clock.now()
                self._report = self.analytics.report(until - timedelta(days=self.window_days), until)
                self._at = time.monotonic()
            return self._report

    def values(self, names: set[str]) -> dict[str, Any]:
        if not any(n.startswith(SKU_SIGNALS + WAREHOUSE_SIGNALS) for n in names):
            return {}
        report = self.report()
        out: dict[str, Any] = {}
        for s in report.skus:
            k = signal_key(s.sku)
            out[f"return_rate_{k}"] = s.return_rate
            out[f"listing_return_rate_{k}"] = s.listing_return_rate()
            out[f"backorder_rate_{k}"] = s.backorder_rate
            out[f"inventory_age_p50_d_{k}"] = s.inventory_age_p50_d
            out[f"units_sold_{k}"] = s.units_sold
        for w in report.warehouses:
            k = signal_key(w.warehouse)
            out[f"split_rate_{k}"] = w.split_shipment_rate
            out[f"pack_p90_h_{k}"] = w.pick_pack_p90_h
            out[f"pack_p50_h_{k}"] = w.pick_pack_p50_h
            out[f"handoff_delay_p50_h_{k}"] = w.handoff_delay_p50_h
        return {n: out[n] for n in names if out.get(n) is not None}

    def returns_by_reason(self, sku: str) -> dict[str, int]:
        """Units returned in the window by reason, most frequent first (empty when none)."""
        for s in self.report().skus:
            if s.sku == sku:
                return dict(s.returns_by_reason)
        return {}


class FulfillmentAnalyticsCollector:
    """Prometheus gauges computed at scrape time from the signals' (cached) report, so Grafana shows the same
    numbers as the rules and the dashboard: per warehouse pick/pack p50/p90, split-shipment and backorder rates
    and inventory age; per SKU (the ``top_skus`` returned most) return rate and returned units by reason."""

    def __init__(self, signals: FulfillmentSignals, top_skus: int = 25, namespace: str = "shopfloor") -> None:
        self.signals, self.top_skus, self.ns = signals, top_skus, namespace

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        report = self.signals.report()
        ns = f"{self.ns}_fulfillment"
        wh_gauges = {
            "pick_pack_p50_hours": ("pick/pack median (hours)", "pick_pack_p50_h"),
            "pick_pack_p90_hours": ("pick/pack p90 (hours)", "pick_pack_p90_h"),
            "handoff_delay_p50_hours": ("packed to handed to the carrier, median (hours)", "handoff_delay_p50_h"),
            "split_shipment_rate": ("share of orders shipped from more than one warehouse", "split_shipment_rate"),
            "backorder_rate": ("order lines refused for stock / lines refused and ordered", "backorder_rate"),
            "inventory_age_p50_days": ("age of the median unit on hand (days, FIFO)", "inventory_age_p50_d"),
        }
        for name, (doc, attr) in wh_gauges.items():
            g = GaugeMetricFamily(f"{ns}_{name}", f"{doc}, last {self.signals.window_days} days",
                                  labels=["warehouse"])
            for w in report.warehouses:
                value = getattr(w, attr)
                if value is not None:
                    g.add_metric([w.warehouse], float(value))
            yield g
        top = sorted((s for s in report.skus if s.units_returned), key=lambda s: (-s.units_returned, s.sku))
        rate = GaugeMetricFamily(f"{ns}_return_rate", "units returned / units sold, SKUs returned most",
                                 labels=["sku"])
        units = GaugeMetricFamily(f"{ns}_returned_units", "units returned by reason, SKUs returned most",
                                  labels=["sku", "reason"])
        for s in top[:self.top_skus]:
            if s.return_rate is not None:
                rate.add_metric([s.sku], float(s.return_rate))
            for reason, n in s.returns_by_reason.items():
                units.add_metric([s.sku, reason], float(n))
        yield rate
        yield units
