"""Request rollups on real SQLite and PostgreSQL, and GET /v1/plans/capacity over them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.store.capacity import record_request_batch, record_requests, request_rollup, request_totals
from shopfloor.store.engine import make_engine
from tests.support.store import new_key

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def test_rollup_upsert_increments_count_errors_and_latency(db_url):
    engine = make_engine(db_url)
    try:
        at = NOW + timedelta(seconds=12)
        record_requests(engine, at, "/v1/orders", count=1, errors=0, latency_ms_sum=12.5)
        record_requests(engine, at + timedelta(seconds=30), "/v1/orders", count=2, errors=1, latency_ms_sum=30.0)
        record_requests(engine, at, "/v1/promise", count=5)
        row = request_rollup(engine, NOW, "/v1/orders")
        assert (row["count"], row["errors"], row["latency_ms_sum"]) == (3, 1, 42.5)
        assert row["minute"] == NOW  # floored to the minute, UTC-aware on both backends
    finally:
        engine.dispose()


def test_concurrent_writers_add_up_instead_of_overwriting(db_url):
    engine = make_engine(db_url)
    try:
        def work(i):
            record_request_batch(
                engine, [{"minute": NOW, "route": "/v1/checkout", "count": 1, "latency_ms_sum": 1.0}] * 2
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(work, range(40)))
        assert request_rollup(engine, NOW, "/v1/checkout")["count"] == 80
    finally:
        engine.dispose()


def test_request_totals_sum_routes_per_minute_in_range(db_url):
    engine = make_engine(db_url)
    try:
        record_requests(engine, NOW, "/a", count=3)
        record_requests(engine, NOW, "/b", count=4)
        record_requests(engine, NOW + timedelta(minutes=2), "/a", count=1)
        record_requests(engine, NOW + timedelta(minutes=5), "/a", count=9)  # at ``until``: excluded
        rows = request_totals(engine, NOW, NOW + timedelta(minutes=5))
        assert rows == [(NOW, 7), (NOW + timedelta(minutes=2), 1)]
    finally:
        engine.dispose()


def test_rollup_rejects_more_errors_than_requests(db_url):
    engine = make_engine(db_url)
    try:
        with pytest.raises(ValueError):
            record_requests(engine, NOW, "/a", count=1, errors=2)
    finally:
        engine.dispose()


# --- route -------------------------------------------------------------------------------------------------------


def _app(url: str) -> tuple[FastAPI, dict[str, dict[str, str]]]:
    """The real app (its Authenticator over the api_keys table, its error handlers) and an Authorization header
    per scope. The app's lifespan closes the container when the TestClient exits."""
    container = build_container(Settings(database_url=url, capacity_min_replicas=1, capacity_per_replica_rps=200.0),
                                clock=FixedClock(NOW))
    auth = {}
    for scope in ("admin", "storefront", "scaler"):
        _, secret = new_key(container.engine, scope)
        auth[scope] = {"Authorization": f"Bearer {secret}"}
    return create_app(container), auth


def test_capacity_plan_route_needs_an_admin_key(db_url):
    app, auth = _app(db_url)
    with TestClient(app) as client:
        r = client.get("/v1/plans/capacity")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = client.get("/v1/plans/capacity", headers={"Authorization": "Bearer sf_no-such-key"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = client.get("/v1/plans/capacity", headers=auth["storefront"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_capacity_plan_route_plans_from_recorded_traffic(db_url):
    app, auth = _app(db_url)
    engine = app.state.container.engine
    # Two days of steady 6,000 requests/minute; 200 rps x 60 = 12,000 per replica-minute -> 1 replica, but the
    # last minute's burst of 30,000 makes the reactive floor ceil(30000 / 8400) = 4.
    start = NOW - timedelta(days=2)
    rows = [
        {"minute": start + timedelta(minutes=i), "route": "/v1/promise", "count": 6000}
        for i in range(2 * 1440 - 1)
    ]
    rows.append({"minute": NOW - timedelta(minutes=1), "route": "/v1/promise", "count": 30000})
    for i in range(0, len(rows), 500):
        record_request_batch(engine, rows[i : i + 500])
    with TestClient(app) as client:
        res = client.get(
            "/v1/plans/capacity",
            params={"horizon_minutes": 60, "slot_minutes": 15, "manifests": "true"},
            headers=auth["admin"],
        )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["generated_at"] == NOW.isoformat()
    assert body["reactive_floor_now"] == 4 and body["slots"][0]["replicas"] >= 4
    assert len(body["slots"]) == 4 and body["last_minute_requests"] == 30000
    assert body["manifests"]["scaledobject"]["kind"] == "ScaledObject"
    assert body["cache_warm"]["source"] == "recent_orders"
    assert body["planner_now"]["at"] == NOW.isoformat() and body["planner_now"]["desired_replicas"] >= 3


def test_desired_replicas_route_answers_what_the_backtested_planner_requests(db_url):
    import numpy as np

    from shopfloor.planning.capacity import PredictivePlanner, simulate

    app, auth = _app(db_url)
    engine = app.state.container.engine
    clock = app.state.container.clock
    # Two days of a daily cycle (peak 30,000 a minute at 12,000 per replica-minute), an hour of nothing recorded
    # (a gap the replay reads as zeros), then a surge in the last minutes.
    start = NOW - timedelta(days=2)
    minutes = np.arange(2 * 1440 + 20)
    values = (15000 + 15000 * np.sin(2 * np.pi * minutes / 1440)).round()
    values[1000:1060] = 0
    values[-8:] *= 3
    rows = [{"minute": start + timedelta(minutes=int(i)), "route": "/v1/promise", "count": int(v)}
            for i, v in zip(minutes, values) if v > 0]
    for i in range(0, len(rows), 500):
        record_request_batch(engine, rows[i : i + 500])

    def expected(n: int) -> int:  # the backtest's replay of the first n minutes, decided at minute n
        planner = PredictivePlanner(12000.0, 10)
        return int(simulate(np.append(values[:n], 0.0), planner, capacity=12000.0, lag=10).requested[-1])

    with TestClient(app) as client:
        assert client.get("/v1/plans/capacity/desired", headers=auth["storefront"]).status_code == 403
        assert client.get("/v1/plans/capacity", headers=auth["scaler"]).status_code == 403  # reads this one only
        answers = []
        for n in (2 * 1440 + 10, 2 * 1440 + 14, 2 * 1440 + 20):  # the clock moves on; the replay continues
            clock.set(start + timedelta(minutes=n, seconds=30))
            res = client.get("/v1/plans/capacity/desired", headers=auth["scaler"])
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["anchor"] == start.isoformat() and body["replayed_minutes"] == n
            # The last two minutes may still grow while their rollups are written: replayed on a copy.
            assert body["desired_replicas"] == expected(n)
            answers.append(body["desired_replicas"])
        assert answers[-1] > answers[0]  # the surge moved the answer
        assert app.state.container.services["capacity.live"].rebuilds == 1


def test_capacity_plan_route_rejects_bad_query_values(db_url):
    app, auth = _app(db_url)
    with TestClient(app) as client:
        res = client.get("/v1/plans/capacity", params={"horizon_minutes": 5}, headers=auth["admin"])
    assert res.status_code == 422


def test_demo_section_prints_the_plan_and_warm_list(db_url, capsys):
    from shopfloor.cli.capacity_cmd import print_demo_capacity

    container = build_container(Settings(database_url=db_url), clock=FixedClock(NOW))
    try:
        record_requests(container.engine, NOW - timedelta(minutes=1), "/v1/promise", count=120)
        body = print_demo_capacity(container, hours=1)
    finally:
        container.close()
    assert len(body["slots"]) == 4 and body["last_minute_requests"] == 120
    out = capsys.readouterr().out
    assert "Capacity plan" in out and "replicas" in out and "cache-warm list" in out


def test_rollup_buffer_flushes_many_requests_as_one_batch_and_keeps_counts_on_failure(db_url):
    from shopfloor.store.capacity import RequestRollupBuffer

    engine = make_engine(db_url)
    try:
        buf = RequestRollupBuffer()
        for i in range(50):
            buf.add(NOW + timedelta(seconds=i), "/v1/promise", error=(i % 10 == 0), latency_ms=2.0)
        buf.add(NOW + timedelta(minutes=1), "/v1/orders")
        assert buf.pending() == 2

        class Broken:
            def begin(self):
                raise RuntimeError("db down")

        with pytest.raises(Exception):
            buf.flush(Broken())  # not an Engine: treated as a connection, whose execute is missing
        assert buf.pending() == 2  # nothing lost
        assert buf.flush(engine) == 2 and buf.pending() == 0
        row = request_rollup(engine, NOW, "/v1/promise")
        assert (row["count"], row["errors"], row["latency_ms_sum"]) == (50, 5, 100.0)
    finally:
        engine.dispose()


def test_rollup_buffer_observer_matches_the_request_metrics_middleware_signature(db_url):
    from shopfloor.store.capacity import RequestRollupBuffer

    engine = make_engine(db_url)
    try:
        buf = RequestRollupBuffer()
        observe = buf.observer(FixedClock(NOW + timedelta(seconds=5)))
        observe("/v1/orders/{order_id}", "GET", 200, 0.004)
        observe("/v1/orders/{order_id}", "GET", 503, 0.006)
        buf.flush(engine)
        row = request_rollup(engine, NOW, "/v1/orders/{order_id}")
        assert (row["count"], row["errors"]) == (2, 1) and abs(row["latency_ms_sum"] - 10.0) < 1e-9
    finally:
        engine.dispose()


def test_plan_command_reads_the_database_and_writes_manifests(db_url, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    engine = make_engine(db_url)
    try:
        record_request_batch(
            engine, [{"minute": NOW - timedelta(minutes=i), "route": "/v1/promise", "count": 900} for i in range(1, 61)]
        )
    finally:
        engine.dispose()
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    res = CliRunner().invoke(
        app, ["capacity", "plan", "--now", NOW.isoformat(), "--capacity-rps", "5", "--k8s-out", str(tmp_path), "--json"]
    )
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["observed_minutes"] == 60 and body["last_minute_requests"] == 900
    assert body["reactive_floor_now"] == 5  # ceil(900 / (0.7 x 300))
    assert (tmp_path / "scaledobject.yaml").exists() and body["cache_warm"]["source"] == "recent_orders"


def test_plan_command_on_an_unmigrated_database_is_a_one_line_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    res = CliRunner().invoke(app, ["capacity", "plan", "--json"])
    assert res.exit_code == 2 and "database_url" in res.output and "Traceback" not in res.output


def test_rollups_count_storefront_traffic_not_probes_scrapes_or_the_autoscalers_polls(db_url):
    from shopfloor.tower.request_rollups import RequestRollups

    engine = make_engine(db_url)
    try:
        rollups = RequestRollups(engine, flush_s=3600.0, clock=FixedClock(NOW + timedelta(seconds=5)))
        for route in ("/v1/products/{sku}", "/v1/checkouts", "/healthz", "/metrics", "/dashboard/api/{panel}",
                      "/v1/plans/capacity/desired", "/v1/plans/capacity", "unmatched", "/v1/checkouts"):
            rollups.observe(route, "GET", 200, 0.01)
        rollups.flush()
        assert request_totals(engine, NOW, NOW + timedelta(minutes=1)) == [(NOW, 3)]
    finally:
        engine.dispose()
