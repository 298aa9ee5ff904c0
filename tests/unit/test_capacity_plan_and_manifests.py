"""The live capacity plan, the cache-warm list, and KEDA/HPA manifests validated against vendored schemas."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from shopfloor.planning.capacity import (
    CapacityInputError,
    CapacityPolicy,
    WarmUrlTemplates,
    cache_warm_list,
    demand_frame_from_recent_counts,
    plan_capacity,
)
from shopfloor.planning.k8s import (
    ManifestOptions,
    hpa_fallback,
    scaled_object,
    trigger_authentication,
    write_manifests,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "k8s"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def _history(days: int = 8, base: float = 600.0) -> pd.Series:
    """Per-minute traffic ending just before NOW, rising every morning from 06:00 to a 12:00 peak."""
    rng = np.random.default_rng(1)
    idx = pd.date_range(NOW - timedelta(days=days), NOW - timedelta(minutes=1), freq="min")
    hours = idx.hour + idx.minute / 60
    rate = base * (0.3 + np.clip((hours - 6) / 6, 0, 1) * np.where(hours < 18, 1.0, 0.0))
    return pd.Series(rng.poisson(rate).astype(float), index=idx)


def _plan(**kw):
    policy = CapacityPolicy(capacity_per_minute=100 * 60 / 60, lag_minutes=10, min_replicas=1, **kw)
    return plan_capacity(_history(), policy, now=NOW)


def test_plan_scales_ahead_of_the_morning_ramp_the_history_shows():
    plan = _plan(horizon_minutes=240, slot_minutes=30)
    counts = [s.replicas for s in plan.slots]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # 08:00 -> 12:00 is a ramp every day
    assert all(s.request_at == max(NOW, s.start - timedelta(minutes=10)) for s in plan.slots)
    # The ramp's end (~600/min over 100/min per replica) needs at least 6 replicas.
    assert counts[-1] >= 6


def test_no_slot_is_requested_before_the_plan_was_made():
    plan = _plan(horizon_minutes=120, slot_minutes=5)
    assert plan.slots[0].start == NOW and plan.slots[0].request_at == NOW  # ready now: asked for now, not 10 min ago
    assert min(s.request_at for s in plan.slots) >= plan.generated_at
    assert plan.slots[2].request_at == plan.slots[2].start - timedelta(minutes=10)  # later slots keep the lead


def test_plan_is_never_below_the_reactive_signal_of_the_last_minute():
    history = _history()
    history.iloc[-1] = 5000  # a burst in the last minute
    plan = plan_capacity(history, CapacityPolicy(capacity_per_minute=100, min_replicas=1), now=NOW)
    assert plan.reactive_floor_now == 72  # ceil(5000 / 70)
    assert plan.slots[0].replicas == 50  # ... capped at max_replicas


def test_plan_ignores_minutes_at_or_after_now():
    history = _history()
    future = pd.Series([1e6] * 30, index=pd.date_range(NOW, periods=30, freq="min"))
    a = plan_capacity(history, CapacityPolicy(capacity_per_minute=100, min_replicas=1), now=NOW)
    b = plan_capacity(pd.concat([history, future]), CapacityPolicy(capacity_per_minute=100, min_replicas=1), now=NOW)
    assert [s.replicas for s in a.slots] == [s.replicas for s in b.slots]


def test_plan_rejects_a_naive_now():
    with pytest.raises(CapacityInputError) as err:
        plan_capacity(_history(), CapacityPolicy(capacity_per_minute=100), now=NOW.replace(tzinfo=None))
    assert err.value.field == "now"


def test_scaledobject_validates_against_the_keda_crd_schema():
    doc = scaled_object(_plan(), ManifestOptions(deployment="web", namespace="shop"))
    jsonschema.validate(doc, _schema("keda-scaledobject-v1alpha1.json"))
    kinds = [t["type"] for t in doc["spec"]["triggers"]]
    assert kinds.count("cron") >= 1 and "prometheus" in kinds and "cpu" in kinds
    assert doc["spec"]["scaleTargetRef"]["name"] == "web" and doc["metadata"]["namespace"] == "shop"


def test_cron_triggers_start_lag_minutes_before_each_window():
    plan = _plan(horizon_minutes=120, slot_minutes=30)
    doc = scaled_object(plan, ManifestOptions())
    crons = [t for t in doc["spec"]["triggers"] if t["type"] == "cron"]
    windows = [w for w in plan.windows() if w.replicas > plan.policy.min_replicas]
    assert len(crons) == len(windows)
    first = windows[0].request_at
    assert crons[0]["metadata"]["start"] == f"{first.minute} {first.hour} {first.day} {first.month} *"
    assert crons[0]["metadata"]["desiredReplicas"] == str(windows[0].replicas)


def test_hpa_fallback_validates_against_the_autoscaling_v2_schema():
    plan = _plan()
    doc = hpa_fallback(plan, ManifestOptions())
    jsonschema.validate(doc, _schema("autoscaling-v2-horizontalpodautoscaler.json"))
    assert doc["spec"]["minReplicas"] == plan.peak_replicas


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["spec"].pop("scaleTargetRef"),
        lambda d: d["spec"]["triggers"][0]["metadata"].update(desiredReplicas=5),  # must be a string
        lambda d: d["spec"].update(minReplicaCount="1"),
        lambda d: d["spec"].update(triggerz=[]),
        lambda d: d["spec"]["triggers"][0].pop("type"),
    ],
)
def test_a_broken_scaledobject_fails_validation(breakage):
    doc = copy.deepcopy(scaled_object(_plan(), ManifestOptions()))
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema("keda-scaledobject-v1alpha1.json"))


def test_a_broken_hpa_fails_validation():
    doc = hpa_fallback(_plan(), ManifestOptions())
    doc["spec"].pop("maxReplicas")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema("autoscaling-v2-horizontalpodautoscaler.json"))


def test_written_yaml_files_round_trip_and_validate(tmp_path):
    paths = write_manifests(_plan(), ManifestOptions(), tmp_path)
    assert [p.name for p in paths] == ["scaledobject.yaml", "hpa-fallback.yaml", "triggerauthentication.yaml"]
    so, hpa, auth = (yaml.safe_load(p.read_text()) for p in paths)
    jsonschema.validate(so, _schema("keda-scaledobject-v1alpha1.json"))
    jsonschema.validate(hpa, _schema("autoscaling-v2-horizontalpodautoscaler.json"))
    assert auth["kind"] == "TriggerAuthentication"


def test_the_scaledobject_follows_the_predictive_planner_through_a_metrics_api_trigger():
    doc = scaled_object(_plan(), ManifestOptions(deployment="web", namespace="shop"))
    jsonschema.validate(doc, _schema("keda-scaledobject-v1alpha1.json"))
    [planner] = [t for t in doc["spec"]["triggers"] if t["type"] == "metrics-api"]
    # AverageValue with a target of 1: the HPA's desired count is the planner's answer itself.
    assert planner["metricType"] == "AverageValue" and planner["metadata"]["targetValue"] == "1"
    assert planner["metadata"]["url"] == "http://web.shop.svc:8000/v1/plans/capacity/desired"
    assert planner["metadata"]["valueLocation"] == "desired_replicas"
    assert planner["metadata"]["authMode"] == "bearer" and planner["useCachedMetrics"] is True
    auth = trigger_authentication(ManifestOptions(deployment="web", namespace="shop"))
    assert planner["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["metadata"]["namespace"] == "shop"
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "token", "name": "shopfloor-capacity-scaler", "key": "token"}]


def test_the_planner_trigger_can_be_left_out_or_pointed_elsewhere():
    off = ManifestOptions(planner_url="off")
    assert not [t for t in scaled_object(_plan(), off)["spec"]["triggers"] if t["type"] == "metrics-api"]
    assert trigger_authentication(off) is None
    url = "https://shop.example.com/v1/plans/capacity/desired"
    doc = scaled_object(_plan(), ManifestOptions(planner_url=url))
    assert [t["metadata"]["url"] for t in doc["spec"]["triggers"] if t["type"] == "metrics-api"] == [url]
    with pytest.raises(CapacityInputError) as err:
        scaled_object(_plan(), ManifestOptions(planner_url="ftp://nope"))
    assert err.value.field == "planner_url"
    with pytest.raises(CapacityInputError) as err:
        scaled_object(_plan(), ManifestOptions(planner_auth="Bad_Name"))
    assert err.value.field == "planner_auth"


def test_invalid_deployment_name_is_rejected_naming_the_field():
    with pytest.raises(CapacityInputError) as err:
        scaled_object(_plan(), ManifestOptions(deployment="Not_A_Name"))
    assert err.value.field == "deployment"


# --- cache-warm list -----------------------------------------------------------------------------------------------


def _demand_frame() -> pd.DataFrame:
    ds = pd.date_range(NOW, periods=4, freq="h")
    rows = []
    for uid, level in [("SKU-1/BR", 5.0), ("SKU-1/US", 1.0), ("SKU-2/US", 3.0), ("SKU-3", 0.5), ("SKU-4", 0.0)]:
        rows += [{"unique_id": uid, "ds": d, "mean": level} for d in ds]
    late = {"unique_id": "SKU-9", "ds": NOW + timedelta(hours=10), "mean": 1000.0}  # outside the window
    return pd.DataFrame(rows + [late])


def test_warm_list_puts_the_hottest_products_and_promises_first_within_the_window():
    entries = cache_warm_list(_demand_frame(), window_start=NOW, window_end=NOW + timedelta(hours=4), top_n=10)
    urls = [e.url for e in entries]
    assert urls[0] == "/v1/products/SKU-1?country=US"  # 24 units over the window: the storefront product page
    assert "/v1/promise?sku=SKU-1&country=BR" in urls and "/v1/promise?sku=SKU-3&country=US" in urls
    assert not any("SKU-9" in u or "SKU-4" in u for u in urls)  # outside the window / no demand
    assert [e.expected_demand for e in entries] == sorted((e.expected_demand for e in entries), reverse=True)


def test_warm_list_honours_top_n_and_url_templates():
    entries = cache_warm_list(
        _demand_frame(),
        window_start=NOW,
        window_end=NOW + timedelta(hours=4),
        top_n=1,
        templates=WarmUrlTemplates(product="/p/{sku}", promise="/pr/{sku}/{country}"),
    )
    assert [e.url for e in entries] == ["/p/SKU-1", "/pr/SKU-1/BR"]


def test_warm_list_rejects_a_frame_without_the_value_column():
    with pytest.raises(CapacityInputError) as err:
        cache_warm_list(_demand_frame().drop(columns="mean"), window_start=NOW, window_end=NOW + timedelta(hours=1))
    assert err.value.field == "mean"


def test_recent_counts_fallback_scales_the_recent_rate_to_the_window():
    frame = demand_frame_from_recent_counts(
        {"A/US": 48, "B": 12}, window_start=NOW, window_minutes=60, lookback_minutes=24 * 60
    )
    assert frame.set_index("unique_id")["mean"].to_dict() == {"A/US": 2.0, "B": 0.5}
    entries = cache_warm_list(frame, window_start=NOW, window_end=NOW + timedelta(hours=1))
    assert entries[0].url == "/v1/products/A?country=US"
