"""The example fulfillment and returns rules (examples/rules.yaml) fire on the analytics signals: a warehouse
missing its pack target loses next-day promises, a SKU returned for listing reasons is flagged (with the reasons)
and kept out of promotions, and old stock is proposed for promotion unless its promotion is suppressed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from shopfloor.domain.clock import FixedClock
from shopfloor.fulfillment.analytics import FulfillmentReport, SkuMeasures, WarehouseMeasures
from shopfloor.tower.actions import (
    DegradePromisesAction,
    FlagListingAction,
    InMemoryActionLog,
    ProposePromotionAction,
    RuleEngine,
    SuppressPromotionAction,
)
from shopfloor.tower.fulfillment_signals import FulfillmentSignals
from shopfloor.tower.rules import load_rules_file
from tests.unit.test_tower_actions import FakeState

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"
FULFILLMENT_RULES = ("gb_south_pack_target_missed", "heart_holder_listing_returns", "old_heart_stock_to_promote")


class FakeListings:
    def __init__(self):
        self.flags = {}

    def get_listing_flag(self, sku, kind, now):
        return self.flags.get((sku, kind))

    def set_listing_flag(self, sku, kind, reasons, note, rule, until, now):
        self.flags[(sku, kind)] = {"reasons": dict(reasons), "note": note, "rule": rule, "until": until}


class FixedAnalytics:
    def __init__(self, report):
        self.report_, self.calls = report, []

    def report(self, since, until):
        self.calls.append((since, until))
        return self.report_


def _report(pack_p90=30.0, sold=50, fit=4, nad=3, quality=9, age=120.0):
    wh = [WarehouseMeasures("gb-south", 10.0, pack_p90, 2.0, 0.1, 0.0, 40.0),
          WarehouseMeasures("gb-north", 8.0, 20.0, 1.0, 0.0, 0.0, 12.0)]
    skus = [SkuMeasures("85123A", (fit + nad + quality) / sold if sold else None, {"quality": quality, "fit": fit,
                                                                  "not_as_described": nad},
                        0.0, age, units_sold=sold, units_returned=fit + nad + quality)]
    return FulfillmentReport(T0 - timedelta(days=30), T0, wh, skus, [])


def _run(report, state=None):
    rules = load_rules_file(RULES)
    rules.rules = [r for r in rules.rules if r.name in FULFILLMENT_RULES]
    state = state if state is not None else FakeState()
    listings = FakeListings()
    analytics = FixedAnalytics(report)
    signals = FulfillmentSignals(analytics, FixedClock(T0), window_days=30)
    actions = {"degrade_promises": DegradePromisesAction(state),
               "suppress_promotion": SuppressPromotionAction(state),
               "flag_listing": FlagListingAction(listings, signals),
               "propose_promotion": ProposePromotionAction(listings, state)}
    results = RuleEngine(rules, signals, actions, InMemoryActionLog(), FixedClock(T0)).run_once()
    return {r.rule: r for r in results}, state, listings, analytics


def test_a_warehouse_missing_its_pack_target_loses_its_next_day_promises():
    results, state, _, _ = _run(_report(pack_p90=30.0))
    assert results["gb_south_pack_target_missed"].fired
    assert state.degradations["gb-south"]["extra_days"] == 1
    results, state, _, _ = _run(_report(pack_p90=20.0))
    assert not results["gb_south_pack_target_missed"].fired and "gb-south" not in state.degradations


def test_a_sku_returned_for_fit_or_description_is_flagged_with_its_reasons_and_kept_out_of_promotions():
    results, state, listings, _ = _run(_report(sold=50, fit=4, nad=3, quality=9))  # 7 / 50 = 14% > 10%
    assert results["heart_holder_listing_returns"].fired
    flag = listings.flags[("85123A", "flag_listing")]
    assert flag["reasons"] == {"fit": 4, "not_as_described": 3}
    assert flag["rule"] == "heart_holder_listing_returns"
    assert "85123A" in state.suppressions
    # Old stock would be proposed for promotion, but the suppression from the rule before wins.
    assert results["old_heart_stock_to_promote"].fired
    assert ("85123A", "propose_promotion") not in listings.flags
    assert "suppressed" in results["old_heart_stock_to_promote"].actions[0]["after"]["skipped"]


def test_returns_for_quality_alone_do_not_flag_the_listing():
    results, _, listings, _ = _run(_report(sold=50, fit=1, nad=1, quality=20))  # 40% returned, 4% for listing
    assert not results["heart_holder_listing_returns"].fired and not listings.flags.get(("85123A", "flag_listing"))


def test_a_listing_rate_on_too_few_sales_does_not_fire():
    results, _, _, _ = _run(_report(sold=10, fit=3, nad=2, quality=0))
    assert not results["heart_holder_listing_returns"].fired


def test_old_stock_whose_promotion_is_free_is_proposed_for_promotion():
    results, _, listings, analytics = _run(_report(fit=0, nad=0, age=120.0))
    assert results["old_heart_stock_to_promote"].fired
    assert ("85123A", "propose_promotion") in listings.flags
    assert analytics.calls == [(T0 - timedelta(days=30), T0)]  # one report serves every signal of the tick
    results, _, listings, _ = _run(_report(fit=0, nad=0, age=30.0))
    assert not results["old_heart_stock_to_promote"].fired


def test_signals_with_nothing_behind_them_have_no_value():
    signals = FulfillmentSignals(FixedAnalytics(_report(sold=0)), FixedClock(T0))
    values = signals.values({"return_rate_85123A", "listing_return_rate_85123A", "pack_p90_h_gb_north",
                             "split_rate_gb_south", "backorder_rate_85123A", "inventory_age_p50_d_85123A"})
    assert "return_rate_85123A" not in values and "listing_return_rate_85123A" not in values  # no sales
    assert values["pack_p90_h_gb_north"] == 20.0 and values["split_rate_gb_south"] == 0.1


def test_the_metrics_collector_exports_the_report_as_gauges_for_grafana():
    from prometheus_client import generate_latest

    from shopfloor.tower.fulfillment_signals import FulfillmentAnalyticsCollector

    text = generate_latest(FulfillmentAnalyticsCollector(
        FulfillmentSignals(FixedAnalytics(_report()), FixedClock(T0)))).decode()
    assert 'shopfloor_fulfillment_pick_pack_p90_hours{warehouse="gb-south"} 30.0' in text
    assert 'shopfloor_fulfillment_split_shipment_rate{warehouse="gb-south"} 0.1' in text
    assert 'shopfloor_fulfillment_inventory_age_p50_days{warehouse="gb-north"} 12.0' in text
    assert 'shopfloor_fulfillment_return_rate{sku="85123A"} 0.32' in text  # (4 + 3 + 9) / 50
    assert 'shopfloor_fulfillment_returned_units{reason="fit",sku="85123A"} 4.0' in text
