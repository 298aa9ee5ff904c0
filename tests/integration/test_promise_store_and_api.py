"""Fulfillment ingest and promises against real SQLite and PostgreSQL, over HTTP routes in a tiny app."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.fulfillment import FulfillmentEvent
from shopfloor.fulfillment.stats import to_hours
from shopfloor.promise.service import build_promise_service
from shopfloor.store.tables import skus, stock, warehouses
from tests.support.store import new_key

NOW = datetime(2024, 5, 6, 9, tzinfo=timezone.utc)


def make_app(url: str) -> tuple[FastAPI, dict[str, dict[str, str]]]:
    """The real app (its Authenticator over the api_keys table, its error handlers) and an Authorization header
    per scope. The app's lifespan closes the container when the TestClient exits."""
    container = build_container(Settings(database_url=url, promise_stats_refresh_s=0), clock=FixedClock(NOW))
    auth = {}
    for scope in ("ingest", "storefront"):
        _, secret = new_key(container.engine, scope)
        auth[scope] = {"Authorization": f"Bearer {secret}"}
    return create_app(container), auth


def insert_rows(url: str, rows: dict) -> None:
    """``{table: [row, ...]}`` inserted in one transaction, parents first (dict order)."""
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.begin() as conn:
        for table, values in rows.items():
            conn.execute(sa.insert(table), [{**v, "updated_at": NOW} for v in values])
    eng.dispose()


def seed(url: str) -> None:
    insert_rows(url, {
        warehouses: [{"id": "north", "region": "N", "country": "BR", "postal_prefixes": ["0"]}],
        skus: [{"sku": "sku1", "name": "Mug", "category": "home", "price": 1000, "currency": "BRL"}],
        stock: [{"sku": "sku1", "warehouse": "north", "on_hand": 50, "reserved": 0}],
    })


def journeys(n=40, end=NOW):
    out = []
    for i in range(n):
        start = end - timedelta(days=10, hours=-4 * i)
        common = {"order_id": f"o{i}", "warehouse": "north", "country": "BR", "postal_code": "01000",
                  "placed_at": start.isoformat()}
        out += [
            {"event_id": f"e{i}a", "type": "approved", "at": start.isoformat(), **common},
            {"event_id": f"e{i}h", "type": "handed_to_carrier", "at": (start + timedelta(hours=20)).isoformat(),
             **common},
            {"event_id": f"e{i}d", "type": "delivered", "at": (start + timedelta(hours=68)).isoformat(), **common},
        ]
    out.append({"event_id": "hb", "order_id": "hb", "type": "picked", "warehouse": "north", "country": "BR",
                "at": (end - timedelta(minutes=1)).isoformat()})
    return out


def test_ingest_is_idempotent_and_order_independent(db_url):
    seed(db_url)
    events = journeys()
    shuffled = events[:]
    random.Random(5).shuffle(shuffled)
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        r = client.post("/v1/fulfillment/events", json={"events": shuffled[:60]}, headers=auth["ingest"])
        assert r.status_code == 200 and r.json() == {"accepted": 60, "duplicates": 0}
        r = client.post("/v1/fulfillment/events", json={"events": events}, headers=auth["ingest"])
        assert r.json() == {"accepted": len(events) - 60, "duplicates": 60}
        r = client.post("/v1/fulfillment/events", json={"events": events}, headers=auth["ingest"])
        assert r.json() == {"accepted": 0, "duplicates": len(events)}
        shuffled_promise = client.get("/v1/promise", params={"sku": "sku1", "country": "BR",
                                                             "postal_code": "01000"}).json()
    assert shuffled_promise["status"] == "in_stock" and shuffled_promise["warehouse"] == "north"
    assert "no_history" not in shuffled_promise["reasons"]
    # The persisted statistics equal those of the same events applied in time order, in memory.
    from shopfloor.fulfillment import FulfillmentStats, OrderTrack
    from shopfloor.store.promise import SqlFulfillmentStore

    from shopfloor.config import Settings
    from shopfloor.promise.service import stats_config

    mem = FulfillmentStats(stats_config(Settings(database_url=db_url)))
    tracks: dict = {}
    for e in sorted(events, key=lambda e: e["at"]):
        ev = FulfillmentEvent(**{**e, "at": datetime.fromisoformat(e["at"]),
                                 "placed_at": datetime.fromisoformat(e["placed_at"]) if e.get("placed_at") else None})
        mem.apply(tracks.setdefault(ev.order_id, OrderTrack(ev.order_id)), ev, origin_region="N")
    eng = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    _, stored = SqlFulfillmentStore(eng).load_changed(0)
    eng.dispose()
    for key in ("wh:north", "lane:N|BR", "proc:*"):
        a = stored[key].processing if key.startswith("wh") else stored[key].hist
        b = mem.get(key).processing if key.startswith("wh") else mem.get(key).hist
        assert a.quantile(0.9) == pytest.approx(b.quantile(0.9))
    assert stored["wh:north"].backlog == mem.get("wh:north").backlog == 0


def test_promise_routes_answer_with_cache_headers(db_url):
    seed(db_url)
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        client.post("/v1/fulfillment/events", json={"events": journeys()}, headers=auth["ingest"])
        r = client.get("/v1/promise", params={"sku": "sku1", "qty": 2, "country": "BR", "postal_code": "01000"})
        assert r.status_code == 200
        body = r.json()
        assert set(body) >= {"status", "warehouse", "ship_by", "deliver_by", "provisional", "reasons"}
        assert "max-age=" in r.headers["cache-control"] and "stale-while-revalidate=" in r.headers["cache-control"]
        assert body["deliver_by"] >= body["ship_by"] >= "2024-05-06"
        b = client.post("/v1/promises", json={"items": [
            {"sku": "sku1", "qty": 1, "country": "BR", "postal_code": "01000"},
            {"sku": "nope", "qty": 1, "country": "BR", "postal_code": "01000"}]})
        assert b.status_code == 200 and "max-age" in b.headers["cache-control"]
        assert [p["status"] for p in b.json()["promises"]] == ["in_stock", "unavailable"]


def test_statistics_survive_a_restart(db_url):
    seed(db_url)
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        client.post("/v1/fulfillment/events", json={"events": journeys()}, headers=auth["ingest"])
        first = client.get("/v1/promise", params={"sku": "sku1", "country": "BR", "postal_code": "01000"}).json()
    # A new process: new container, new engine, same database.
    container = build_container(Settings(database_url=db_url), clock=FixedClock(NOW))
    try:
        svc = build_promise_service(container.settings, container.engine, container.clock)
        again = svc.engine.promise_for("sku1", 1, "BR", "01000").to_dict()
        assert svc.store.event_count() == len(journeys())
    finally:
        container.close()
    assert {k: again[k] for k in ("deliver_by", "ship_by", "eta_p50", "reasons")} == \
        {k: first[k] for k in ("deliver_by", "ship_by", "eta_p50", "reasons")}
    assert "no_history" not in again["reasons"]


def test_recorded_promises_feed_calibration_and_overdue_ones_count_as_misses(db_url):
    seed(db_url)
    container = build_container(Settings(database_url=db_url, promise_stats_refresh_s=0), clock=FixedClock(NOW))
    try:
        svc = build_promise_service(container.settings, container.engine, container.clock)
        svc.ingest([FulfillmentEvent(**{**e, "at": datetime.fromisoformat(e["at"]),
                                        "placed_at": datetime.fromisoformat(e["placed_at"]) if e.get("placed_at")
                                        else None}) for e in journeys()], NOW)
        w = svc.engine.delivery_window("north", "N", "BR", NOW)
        svc.engine.record_promise("late-order", w)
        assert svc.store.track("late-order").promise_due_h is not None
        later = datetime.combine(w.deliver_by, datetime.min.time(), tzinfo=timezone.utc) + timedelta(days=2)
        r = svc.ingest([FulfillmentEvent(event_id="z", order_id="other", type="approved", at=later,
                                         warehouse="north", country="BR")], later)
        assert r.overdue_resolved == 1
        assert svc.store.track("late-order").outcome == "miss"
        svc.source.refresh(force=True)
        cal = svc.source.current().calibration(0.9)
        assert cal.outcomes.value(to_hours(later), 0) > 0  # one miss on record, persisted and reloaded
    finally:
        container.close()


@pytest.mark.parametrize("bad,field", [
    ({"events": []}, "events"),
    ({"events": [{"event_id": "a", "order_id": "o", "type": "teleported", "at": "2024-05-01T00:00:00Z",
                  "warehouse": "w", "country": "BR"}]}, "type"),
    ({"events": [{"event_id": "a", "order_id": "o", "type": "approved", "at": "2024-05-01T00:00:00",
                  "warehouse": "w", "country": "BR"}]}, "at"),
    ({"events": [{"event_id": "a", "order_id": "o", "type": "approved", "at": "2024-05-01T00:00:00Z",
                  "warehouse": "w"}]}, "events"),
])
def test_bad_events_are_rejected_with_the_error_envelope(db_url, bad, field):
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        r = client.post("/v1/fulfillment/events", json=bad, headers=auth["ingest"])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error" and any(field in d["field"] for d in err["details"])


def test_ingest_needs_a_key_with_the_ingest_scope(db_url):
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        r = client.post("/v1/fulfillment/events", json={"events": journeys(1)})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = client.post("/v1/fulfillment/events", json={"events": journeys(1)},
                        headers={"Authorization": "Bearer sf_no-such-key"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = client.post("/v1/fulfillment/events", json={"events": journeys(1)}, headers=auth["storefront"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_bad_promise_queries_are_rejected(db_url):
    app, _ = make_app(db_url)
    with TestClient(app) as client:
        assert client.get("/v1/promise", params={"sku": "a", "qty": 0, "country": "BR"}).status_code == 422
        assert client.get("/v1/promise", params={"sku": "a", "country": "Brazil"}).status_code == 422
        assert client.post("/v1/promises", json={"items": []}).status_code == 422


def test_a_checkout_promises_each_line_from_the_warehouse_that_holds_its_reservation(db_url):
    # "north" serves the destination and holds sku1 only; "south" holds both SKUs, so the order ships whole from
    # "south" and its promise must say so for both lines (promised alone, sku1 would name "north").
    seed(db_url)
    insert_rows(db_url, {
        warehouses: [{"id": "south", "region": "S", "country": "BR", "postal_prefixes": ["9"]}],
        skus: [{"sku": "sku2", "name": "Tea", "category": "home", "price": 500, "currency": "BRL"}],
        stock: [{"sku": "sku1", "warehouse": "south", "on_hand": 50, "reserved": 0},
                {"sku": "sku2", "warehouse": "south", "on_hand": 50, "reserved": 0}],
    })
    app, auth = make_app(db_url)
    with TestClient(app) as client:
        alone = client.get("/v1/promise", params={"sku": "sku1", "qty": 1, "country": "BR", "postal_code": "01000"})
        assert alone.json()["warehouse"] == "north"
        r = client.post("/v1/checkouts", headers={**auth["storefront"], "Idempotency-Key": "two-lines"}, json={
            "lines": [{"sku": "sku1", "qty": 1}, {"sku": "sku2", "qty": 1}],
            "ship_to": {"country": "BR", "postal_code": "01000"}, "payment": {"token": "tok_ok"}})
        assert r.status_code == 201, r.text
        body = r.json()
        assert {line["warehouse"] for line in body["lines"]} == {"south"}
        assert {line["sku"]: line["warehouse"] for line in body["promise"]["lines"]} == {"sku1": "south",
                                                                                         "sku2": "south"}
