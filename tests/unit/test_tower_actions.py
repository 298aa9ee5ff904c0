"""The rule engine: actions run when rules hold, cooldowns and dry runs behave, and the log says why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shopfloor.domain.clock import FixedClock
from shopfloor.tower.actions import (
    AlertAction,
    CompositeSignals,
    DegradePromisesAction,
    InMemoryActionLog,
    InMemoryPaymentRouting,
    ReorderProcessorsAction,
    RuleEngine,
    ScaleAction,
    StaticSignals,
    SuppressPromotionAction,
    WarmCachesAction,
)
from shopfloor.tower.rules import parse_rules

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


class FakeState:
    def __init__(self):
        self.suppressions, self.degradations, self.alerts = {}, {}, []

    def get_suppression(self, sku, now):
        s = self.suppressions.get(sku)
        return s if s and s["until"] > now.isoformat() else None

    def suppress_promotion(self, sku, reason, alternatives, until, now):
        self.suppressions[sku] = {"sku": sku, "reason": reason, "alternatives": alternatives,
                                  "until": until.isoformat()}

    def get_degradation(self, warehouse, now):
        return self.degradations.get(warehouse)

    def degrade_promises(self, warehouse, reason, extra_days, until, now):
        self.degradations[warehouse] = {"extra_days": extra_days, "until": until.isoformat()}

    def add_alert(self, **kw):
        self.alerts.append(kw)
        return len(self.alerts)


class FakeResponse:
    def __init__(self, status):
        self.status_code = status


class FakeHttp:
    def __init__(self, status=200):
        self.calls, self.status = [], status

    def get(self, url, **kw):
        self.calls.append(("GET", url, kw))
        return FakeResponse(self.status)

    def post(self, url, **kw):
        self.calls.append(("POST", url, kw))
        return FakeResponse(self.status)


class FakePlans:
    def current_replicas(self):
        return 2

    def capacity_plan(self):
        return {"replicas": 9, "by_hour": [4, 9]}


def engine_for(doc, values, *, clock=None, state=None, routing=None, http=None, tmp_path=None):
    clock = clock or FixedClock(T0)
    state = state if state is not None else FakeState()
    http = http or FakeHttp()
    log = InMemoryActionLog()
    actions = {
        "scale": ScaleAction(FakePlans(), http=http, emit_dir=tmp_path),
        "warm_caches": WarmCachesAction(http),
        "reorder_processors": ReorderProcessorsAction(routing),
        "suppress_promotion": SuppressPromotionAction(state),
        "degrade_promises": DegradePromisesAction(state),
        "alert": AlertAction(state, http=http),
    }
    signals = StaticSignals(values)
    return RuleEngine(parse_rules(doc), signals, actions, log, clock), log, clock, state, http


PAYMENTS_RULE = {"rules": [{
    "name": "stripe_failing", "when": "payment_success_rate_stripe < 0.85", "cooldown": "10m",
    "actions": [{"type": "reorder_processors", "demote": "stripe"}],
}]}


def test_a_rule_that_holds_runs_its_action_and_logs_before_after_and_values():
    routing = InMemoryPaymentRouting(["stripe", "adyen", "mollie"])
    engine, log, *_ = engine_for(PAYMENTS_RULE, {"payment_success_rate_stripe": 0.6}, routing=routing)
    [result] = engine.run_once()
    assert result.fired and result.actions[0]["status"] == "applied"
    assert routing.processor_order() == ["adyen", "mollie", "stripe"]
    [entry] = log.entries
    assert entry.rule == "stripe_failing"
    assert entry.reason == "payment_success_rate_stripe < 0.85"
    assert entry.signal_values == {"payment_success_rate_stripe": 0.6}
    assert entry.before == {"order": ["stripe", "adyen", "mollie"]}
    assert entry.after == {"order": ["adyen", "mollie", "stripe"]}
    assert entry.at == T0 and entry.dry_run is False


def test_a_rule_that_does_not_hold_does_nothing():
    routing = InMemoryPaymentRouting(["stripe", "adyen"])
    engine, log, *_ = engine_for(PAYMENTS_RULE, {"payment_success_rate_stripe": 0.99}, routing=routing)
    [result] = engine.run_once()
    assert not result.fired and log.entries == []
    assert routing.processor_order() == ["stripe", "adyen"]


def test_cooldown_holds_an_action_back_until_it_has_passed():
    routing = InMemoryPaymentRouting(["stripe", "adyen"])
    engine, log, clock, *_ = engine_for(PAYMENTS_RULE, {"payment_success_rate_stripe": 0.5}, routing=routing)
    engine.run_once()
    routing.set_processor_order(["stripe", "adyen"])  # someone puts stripe back
    clock.advance(minutes=9, seconds=59)
    [held] = engine.run_once()
    assert held.actions[0]["status"] == "cooldown" and held.actions[0]["remaining_s"] == pytest.approx(1.0)
    assert routing.processor_order() == ["stripe", "adyen"]
    clock.advance(seconds=1)
    [again] = engine.run_once()
    assert again.actions[0]["status"] == "applied"
    assert [e.status for e in log.entries] == ["applied", "applied"]


def test_dry_run_changes_nothing_logs_what_would_happen_and_never_blocks_a_real_run():
    routing = InMemoryPaymentRouting(["stripe", "adyen"])
    engine, log, clock, *_ = engine_for(PAYMENTS_RULE, {"payment_success_rate_stripe": 0.5}, routing=routing)
    [dry] = engine.run_once(dry_run=True)
    assert dry.actions[0]["status"] == "dry_run"
    assert routing.processor_order() == ["stripe", "adyen"]
    assert log.entries[0].after == {"order": ["adyen", "stripe"]} and log.entries[0].dry_run
    # dry runs have their own cooldown ...
    clock.advance(minutes=1)
    assert engine.run_once(dry_run=True)[0].actions[0]["status"] == "cooldown"
    # ... and do not hold back the real action
    assert engine.run_once()[0].actions[0]["status"] == "applied"
    assert routing.processor_order() == ["adyen", "stripe"]


def test_a_failed_action_is_logged_and_does_not_start_a_cooldown():
    engine, log, clock, *_ = engine_for(PAYMENTS_RULE, {"payment_success_rate_stripe": 0.5}, routing=None)
    first = engine.run_once()[0].actions[0]
    assert first["status"] == "failed" and "payment routing" in first["error"]
    clock.advance(seconds=1)
    assert engine.run_once()[0].actions[0]["status"] == "failed"  # tried again, not cooling down
    assert [e.status for e in log.entries] == ["failed", "failed"]


def test_a_rule_with_a_missing_signal_is_skipped_and_says_which():
    engine, log, *_ = engine_for(PAYMENTS_RULE, {}, routing=InMemoryPaymentRouting(["stripe"]))
    [result] = engine.run_once()
    assert result.skipped == "signal 'payment_success_rate_stripe' has no value" and log.entries == []


def test_suppress_and_degrade_write_state_with_deadlines_and_alternatives():
    doc = {"rules": [{
        "name": "low_cover", "when": "stock_cover_days_SKU_1 < 1 and feed_age_s_wh_1 > 600",
        "actions": [
            {"type": "suppress_promotion", "sku": "SKU-1", "alternatives": ["SKU-2"], "for": "6h"},
            {"type": "degrade_promises", "warehouse": "wh-1", "extra_days": 2, "for": "2h"},
        ]}]}
    engine, log, clock, state, _ = engine_for(doc, {"stock_cover_days_SKU_1": 0.4, "feed_age_s_wh_1": 900})
    engine.run_once()
    assert state.suppressions["SKU-1"]["alternatives"] == ["SKU-2"]
    assert state.suppressions["SKU-1"]["until"] == (T0 + timedelta(hours=6)).isoformat()
    assert state.degradations["wh-1"] == {"extra_days": 2, "until": (T0 + timedelta(hours=2)).isoformat()}
    assert log.entries[0].before == {"suppression": None}
    assert log.entries[0].after["suppression"]["sku"] == "SKU-1"


def test_scale_emits_the_clamped_plan_and_warming_requests_every_url(tmp_path):
    doc = {"rules": [{
        "name": "surge", "when": "traffic_forecast_60m > 1.3 * traffic_baseline",
        "actions": [{"type": "scale", "max_replicas": 6}, {"type": "warm_caches", "urls": ["http://a/", "http://b/"]},
                    {"type": "alert", "channel": "webhook", "url": "http://hook/"}]}]}
    engine, log, _, state, http = engine_for(doc, {"traffic_forecast_60m": 200, "traffic_baseline": 100},
                                             tmp_path=tmp_path)
    [result] = engine.run_once()
    assert [a["status"] for a in result.actions] == ["applied", "applied", "applied"]
    scale = log.entries[0]
    assert scale.before == {"replicas": 2} and scale.after["replicas"] == 6
    assert len(list(tmp_path.glob("capacity-plan-*.json"))) == 1
    assert [c[:2] for c in http.calls] == [("GET", "http://a/"), ("GET", "http://b/"), ("POST", "http://hook/")]
    assert http.calls[2][2]["json"]["values"] == {"traffic_baseline": 100, "traffic_forecast_60m": 200}
    assert state.alerts[0]["source"] == "rule:surge"


def test_a_webhook_answering_an_error_marks_the_action_failed():
    doc = {"rules": [{"name": "a", "when": "traffic_rpm > 1",
                      "actions": [{"type": "alert", "channel": "webhook", "url": "http://hook/"}]}]}
    engine, log, *_ = engine_for(doc, {"traffic_rpm": 5}, http=FakeHttp(status=503))
    assert engine.run_once()[0].actions[0]["status"] == "failed"
    assert "HTTP 503" in log.entries[0].error


def test_composite_signals_take_the_first_provider_that_knows_a_value():
    combined = CompositeSignals(StaticSignals({"a": None, "b": 2}), StaticSignals({"a": 1, "b": 3}))
    assert combined.values({"a", "b", "c"}) == {"a": 1, "b": 2, "c": None}


def test_scale_refuses_a_plan_without_a_replica_count(tmp_path):
    class NoReplicas(FakePlans):
        def capacity_plan(self):
            return {"by_hour": [3, 4]}

    doc = {"rules": [{"name": "surge", "when": "traffic_rpm > 1", "actions": [{"type": "scale"}]}]}
    log = InMemoryActionLog()
    engine = RuleEngine(parse_rules(doc), StaticSignals({"traffic_rpm": 5}),
                        {"scale": ScaleAction(NoReplicas(), emit_dir=tmp_path)}, log, FixedClock(T0))
    assert engine.run_once()[0].actions[0]["status"] == "failed"
    assert "no valid 'replicas'" in log.entries[0].error
    assert list(tmp_path.iterdir()) == []
