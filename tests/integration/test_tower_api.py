"""Tower routes on a real database: beacons roll up per minute, storefront reads, admin reads, auth, 422s."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.store.tower import TowerRepository
from shopfloor.tower.actions import LogEntry
from tests.support.store import new_key

NOW = datetime(2026, 6, 1, 10, 30, 15, tzinfo=timezone.utc)


@pytest.fixture
def client(db_url):
    container = build_container(Settings(database_url=db_url, tower_beacon_flush_s=0), clock=FixedClock(NOW))
    _, store = new_key(container.engine, "storefront")
    _, admin = new_key(container.engine, "admin")
    # The real app: its Authenticator over the api_keys table and its error handlers (the lifespan closes the
    # container on exit).
    with TestClient(create_app(container)) as c:
        c.container = container
        c.store, c.admin = {"Authorization": f"Bearer {store}"}, {"Authorization": f"Bearer {admin}"}
        yield c


def test_beacons_roll_up_per_minute_and_stage_and_accumulate_across_batches(client):
    minute = NOW.replace(second=0)
    batch = {"events": [
        {"type": "page_view", "at": minute.isoformat(), "page_load_ms": 800},
        {"type": "page_view", "at": (minute + timedelta(seconds=10)).isoformat(), "page_load_ms": 1200},
        {"type": "product_view", "sku": "SKU-1"},
        {"type": "add_to_cart", "at": (minute - timedelta(minutes=1)).isoformat()},
    ]}
    r = client.post("/v1/events/storefront", json=batch, headers=client.store)
    assert r.status_code == 202 and r.json() == {"accepted": 4, "rollup_rows": 3}
    client.post("/v1/events/storefront", json={"events": [{"type": "page_view", "page_load_ms": 1000}]},
                headers=client.store)
    repo = TowerRepository(client.container.engine)
    rows = {(r["minute"], r["stage"]): r for r in repo.funnel_series(minute - timedelta(minutes=5),
                                                                      minute + timedelta(minutes=1))}
    pv = rows[(minute, "page_view")]
    assert (pv["count"], pv["latency_ms_sum"], pv["latency_count"]) == (3, 3000.0, 3)
    assert rows[(minute, "product_view")]["count"] == 1
    assert rows[(minute - timedelta(minutes=1), "add_to_cart")]["latency_count"] == 0
    funnel = client.get("/v1/tower/funnel?minutes=5", headers=client.admin).json()
    assert funnel["series"]["series"]["page_view"]["count"][-1] == 3
    assert funnel["series"]["series"]["page_view"]["latency_ms_mean"][-1] == 1000.0
    steps = {s["stage"]: s for s in funnel["conversion"]["steps"]}
    assert steps["product_view"]["from_first"] == pytest.approx(1 / 3, abs=1e-4)


def test_page_loads_and_checkouts_give_95th_percentiles_to_the_dashboard_and_the_rules(client):
    from shopfloor.tower.observer import FunnelObserver
    from shopfloor.tower.service import DatabaseSignals, FunnelBuffer
    from shopfloor.tower.metrics import FunnelMetrics
    from prometheus_client import CollectorRegistry

    minute = NOW.replace(second=0)
    # nineteen page loads of 100 ms and one of 3 s: the mean is 245 ms, the 95th percentile stays at 100 ms
    events = [{"type": "page_view", "at": (minute + timedelta(seconds=i)).isoformat(), "page_load_ms": 100}
              for i in range(19)]
    events.append({"type": "page_view", "at": minute.isoformat(), "page_load_ms": 3000})
    assert client.post("/v1/events/storefront", json={"events": events}, headers=client.store).status_code == 202
    repo = TowerRepository(client.container.engine)
    buffer = FunnelBuffer(repo, flush_interval_s=0)
    observer = FunnelObserver(FunnelMetrics(CollectorRegistry()), buffer, FixedClock(NOW))
    for ms in [40.0] * 18 + [900.0, 1200.0]:  # two slow checkouts of twenty
        observer.checkout_finished(201, ms / 1000.0, {"order_id": "o"}, {"processor": "p", "outcome": "approved"},
                                   promised=False)
    funnel = client.get("/v1/tower/funnel?minutes=5", headers=client.admin).json()["series"]["series"]
    assert funnel["page_view"]["latency_ms_mean"][-1] == 245.0
    assert funnel["page_view"]["latency_ms_p95"][-1] == pytest.approx(100.0)
    # rank 19 of 20 checkouts is the first slow one, at the top of the (600, 1000] bucket
    assert funnel["checkout_attempt"]["latency_ms_p95"][-1] == pytest.approx(1000.0)
    signals = DatabaseSignals(repo, FixedClock(NOW + timedelta(minutes=1))).values(
        {"page_load_ms", "page_load_p95_ms", "checkout_latency_ms", "checkout_latency_p95_ms"})
    assert signals["page_load_ms"] == pytest.approx(245.0) and signals["page_load_p95_ms"] == pytest.approx(100.0)
    assert signals["checkout_latency_ms"] == pytest.approx((18 * 40 + 900 + 1200) / 20)
    assert signals["checkout_latency_p95_ms"] == pytest.approx(1000.0)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"events": [{"type": "purchase"}]}, "events.0.type"),
        ({"events": [{"type": "page_view", "page_load_ms": -1}]}, "events.0.page_load_ms"),
        ({"events": [{"type": "page_view", "colour": "red"}]}, "events.0.colour"),
        ({"events": []}, "events"),
        ({}, "events"),
    ],
)
def test_bad_beacons_are_refused_with_422_naming_the_field(client, body, field):
    r = client.post("/v1/events/storefront", json=body, headers=client.store)
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["error"]["details"]]


def test_beacons_from_far_in_the_past_are_refused_naming_the_event(client):
    old = (NOW - timedelta(days=2)).isoformat()
    r = client.post("/v1/events/storefront", json={"events": [{"type": "page_view"}, {"type": "page_view",
                                                                                     "at": old}]}, headers=client.store)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.1.at"
    assert r.json()["error"]["message"].startswith("events.1.at: ")


def test_beacons_need_a_storefront_key(client):
    body = {"events": [{"type": "page_view"}]}
    r = client.post("/v1/events/storefront", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.post("/v1/events/storefront", json=body, headers={"Authorization": "Bearer sf_no-such-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.post("/v1/events/storefront", json=body, headers=client.admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    refused_nothing_recorded = TowerRepository(client.container.engine).funnel_series(
        NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert refused_nothing_recorded == []


def test_suppressed_promotions_and_alternatives_are_served_to_the_storefront(client):
    repo = TowerRepository(client.container.engine)
    repo.suppress_promotion("SKU-1", "low cover", ["SKU-2", "SKU-3"], NOW + timedelta(hours=6), NOW)
    repo.suppress_promotion("SKU-9", "expired", ["SKU-8"], NOW - timedelta(minutes=1), NOW - timedelta(hours=7))
    listed = client.get("/v1/promotions/suppressed", headers=client.store).json()["suppressions"]
    assert [s["sku"] for s in listed] == ["SKU-1"]
    alt = client.get("/v1/skus/SKU-1/alternatives?limit=1", headers=client.store).json()
    assert alt == {"sku": "SKU-1", "suppressed": True, "alternatives": ["SKU-2"],
                   "until": (NOW + timedelta(hours=6)).isoformat()}
    assert client.get("/v1/skus/SKU-9/alternatives", headers=client.store).json()["suppressed"] is False


def test_admin_reads_alerts_and_the_action_log_with_before_and_after(client):
    repo = TowerRepository(client.container.engine)
    repo.add_alert(at=NOW - timedelta(minutes=3), source="detector", metric="checkout_rate", kind="dip",
                   observed=0.4, expected=0.9, lower=0.8, upper=1.0, score=7.5, message="checkout rate dropped")
    repo.record(LogEntry(NOW, "stripe_failing", "stripe_failing#0:reorder_processors", "reorder_processors",
                         "applied", False, "payment_success_rate_stripe < 0.85",
                         {"payment_success_rate_stripe": 0.6}, {"order": ["stripe", "adyen"]},
                         {"order": ["adyen", "stripe"]}))
    assert repo.last_fired("stripe_failing#0:reorder_processors", False) == NOW
    assert repo.last_fired("stripe_failing#0:reorder_processors", True) is None
    alerts = client.get("/v1/tower/alerts", headers=client.admin).json()["alerts"]
    assert alerts[0]["metric"] == "checkout_rate" and alerts[0]["lower"] == 0.8 and alerts[0]["observed"] == 0.4
    actions = client.get("/v1/tower/actions", headers=client.admin).json()["actions"]
    assert actions[0]["before"] == {"order": ["stripe", "adyen"]}
    assert actions[0]["after"] == {"order": ["adyen", "stripe"]}
    assert actions[0]["signal_values"] == {"payment_success_rate_stripe": 0.6}
    r = client.get("/v1/tower/actions", headers=client.store)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_database_signals_come_from_the_rollups(client):
    from shopfloor.tower.service import DatabaseSignals, FunnelRecorder

    repo = TowerRepository(client.container.engine)
    rec = FunnelRecorder(repo)
    last = NOW.replace(second=0) - timedelta(minutes=1)
    for stage, n in (("page_view", 40), ("product_view", 20), ("add_to_cart", 5)):
        rec.record(stage, last, count=n)
    rec.record("checkout_attempt", last, latency_ms=300.0, count=4)
    rec.record("checkout_succeeded", last, count=3)
    sig = DatabaseSignals(repo, client.container.clock).values(
        {"traffic_rpm", "add_to_cart_rate", "checkout_success_rate", "checkout_latency_ms", "traffic_baseline"})
    assert sig == {"traffic_rpm": 40, "add_to_cart_rate": 0.25, "checkout_success_rate": 0.75,
                   "checkout_latency_ms": 300.0, "traffic_baseline": None}
    # Two more attempts refused as sold out: right answers, so the success rate stays 3 of the 4 that could succeed.
    rec.record("checkout_attempt", last, latency_ms=300.0, count=2)
    rec.record("checkout_refused", last, count=2)
    assert DatabaseSignals(repo, client.container.clock).values({"checkout_success_rate"}) == {
        "checkout_success_rate": 0.75}


def test_buffered_beacons_are_group_committed_and_flushed_on_close(db_url):
    from shopfloor.store.engine import make_engine
    from shopfloor.tower.service import FunnelBuffer, aggregate_events

    ticks = [0.0]
    engine = make_engine(db_url)
    repo = TowerRepository(engine)
    buf = FunnelBuffer(repo, flush_interval_s=1.0, monotonic=lambda: ticks[0])
    minute = NOW.replace(second=0)
    window = (minute, minute + timedelta(minutes=1))
    buf.add(aggregate_events([(NOW, "page_view", 100.0)] * 3))
    buf.add(aggregate_events([(NOW, "page_view", None)] * 2))
    assert repo.funnel_series(*window) == []  # not due yet
    ticks[0] = 1.0
    buf.add(aggregate_events([(NOW, "add_to_cart", None)]))
    got = {r["stage"]: (r["count"], r["latency_count"]) for r in repo.funnel_series(*window)}
    assert got == {"page_view": (5, 3), "add_to_cart": (1, 0)}
    buf.add(aggregate_events([(NOW, "page_view", None)]))
    buf.close()
    assert {r["stage"]: r["count"] for r in repo.funnel_series(*window)}["page_view"] == 6
    engine.dispose()


def test_the_funnel_monitor_learns_from_history_and_stores_an_alert_for_a_traffic_drop(db_url):
    import math

    from shopfloor.store.engine import make_engine
    from shopfloor.tower.monitor import FunnelMonitor, MonitorSignals

    engine = make_engine(db_url)
    repo = TowerRepository(engine)
    start = NOW.replace(second=0) - timedelta(hours=8)
    rows = []
    for k in range(8 * 60):
        n = int(200 + 50 * math.sin(k / 60) + (k * 37 % 11))
        rows.append({"minute": start + timedelta(minutes=k), "stage": "page_view", "count": n,
                     "latency_ms_sum": 900.0 * n, "latency_count": n})
    repo.add_funnel_counts(rows)
    clock = FixedClock(NOW)
    monitor = FunnelMonitor(repo, clock, warmup_minutes=8 * 60)
    assert monitor.tick() == []  # warm-up replay stores nothing
    repo.add_funnel_counts([{"minute": NOW.replace(second=0), "stage": "page_view", "count": 12,
                             "latency_ms_sum": 12 * 900.0, "latency_count": 12}])
    clock.advance(minutes=1)
    [alert] = [a for a in monitor.tick() if a.metric == "traffic"]
    assert alert.kind == "dip" and alert.observed == 12 and alert.lower > 12
    stored = repo.list_alerts()
    assert stored[0]["metric"] == "traffic" and stored[0]["source"] == "detector"
    assert MonitorSignals(monitor).values({"anomaly_score_traffic"})["anomaly_score_traffic"] >= alert.score - 1e-9
    engine.dispose()


def test_a_failed_flush_keeps_the_rows_and_does_not_fail_the_request():
    from shopfloor.tower.service import FunnelBuffer, aggregate_events

    class FlakyRepo:
        def __init__(self):
            self.calls, self.rows = 0, []

        def add_funnel_counts(self, rows):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("database is down")
            self.rows.extend(rows)
            return len(rows)

    repo = FlakyRepo()
    buf = FunnelBuffer(repo, flush_interval_s=0)
    buf.add(aggregate_events([(NOW, "page_view", None)] * 2))  # flush fails, no exception
    buf.add(aggregate_events([(NOW, "page_view", None)]))  # flush succeeds with both batches
    assert [(r["stage"], r["count"]) for r in repo.rows] == [("page_view", 3)]


def test_rollups_past_their_retention_are_purged_a_day_at_a_time_latency_buckets_included(client):
    repo = TowerRepository(client.container.engine)
    minute = NOW.replace(second=0)
    rows = [{"minute": minute - timedelta(days=d), "stage": "checkout_attempt", "count": 1, "latency_ms_sum": 40.0,
             "latency_count": 1, "latency_buckets": [0, 0, 0, 1] + [0] * 11} for d in (40, 39, 38, 2, 0)]
    repo.add_funnel_counts(rows)
    cutoff = minute - timedelta(days=35)
    # the first call deletes only the oldest day (the rollups of day 40, with their latency bucket)
    assert repo.purge_rollups(cutoff) == 2
    assert repo.purge_rollups(cutoff) == 2 and repo.purge_rollups(cutoff) == 2
    assert repo.purge_rollups(cutoff) == 0  # nothing older than the retention is left
    kept = repo.funnel_series(minute - timedelta(days=50), minute + timedelta(minutes=1))
    assert [r["minute"] for r in kept] == [minute - timedelta(days=2), minute]
    hist = repo.funnel_latency(minute - timedelta(days=50), minute + timedelta(minutes=1))
    assert sorted(m for m, _ in hist) == [minute - timedelta(days=2), minute]
