"""Fulfillment and returns analytics, computed in SQL, against hand-computed values on SQLite and PostgreSQL.

The store below is small enough to work every number out by hand; each test says which numbers and why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.fulfillment import FulfillmentEvent
from shopfloor.store.analytics import SqlFulfillmentAnalytics, record_receipt
from shopfloor.store.analytics_tables import stock_refusals
from shopfloor.store.promise import SqlFulfillmentStore
from shopfloor.store.tables import order_lines, orders, skus, stock, warehouses
from tests.support.store import new_key

NOW = datetime(2024, 5, 6, 9, tzinfo=timezone.utc)
SINCE = NOW - timedelta(days=30)
T = NOW - timedelta(days=10)
H = timedelta(hours=1)


def _engine(url):
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def _journey(oid, wh, steps, region="SP", placed=None):
    out = []
    for typ, at in steps:
        out.append(FulfillmentEvent(event_id=f"{oid}-{typ}", order_id=oid, type=typ, at=at, warehouse=wh,
                                    region=region, country="BR", placed_at=placed))
    return out


def _return(eid, sku, qty, reason, at, wh="north"):
    return FulfillmentEvent(event_id=eid, order_id=f"o-{eid}", type="returned", at=at, warehouse=wh, sku=sku,
                            qty=qty, reason=reason, restock=False)


def build_store(url: str) -> None:
    eng = _engine(url)
    with eng.begin() as conn:
        conn.execute(sa.insert(warehouses), [
            {"id": "north", "region": "N", "country": "BR", "postal_prefixes": ["0"], "updated_at": NOW},
            {"id": "south", "region": "S", "country": "BR", "postal_prefixes": ["9"], "updated_at": NOW}])
        conn.execute(sa.insert(skus), [{"sku": s, "name": s, "category": "c", "price": 100, "currency": "BRL",
                                        "updated_at": NOW} for s in ("A", "B", "C")])
        conn.execute(sa.insert(stock), [
            {"sku": "A", "warehouse": "north", "on_hand": 10, "reserved": 0, "updated_at": NOW},
            {"sku": "B", "warehouse": "north", "on_hand": 0, "reserved": 0, "updated_at": NOW},
            {"sku": "C", "warehouse": "north", "on_hand": 4, "reserved": 0, "updated_at": NOW},
            {"sku": "C", "warehouse": "south", "on_hand": 3, "reserved": 0, "updated_at": NOW}])
        for sku, wh, qty, days in (("A", "north", 8, 30), ("A", "north", 6, 10), ("A", "north", 2, 2),
                                   ("C", "north", 4, 1), ("C", "south", 5, 20)):
            record_receipt(conn, sku, wh, qty, NOW - timedelta(days=days), "count")

        def order(oid, status, split, created, lines):
            conn.execute(sa.insert(orders).values(
                id=oid, status=status, ship_to={}, payment={}, total=0, currency="BRL", split=split,
                created_at=created, updated_at=created))
            conn.execute(sa.insert(order_lines), [
                {"order_id": oid, "line_no": i, "sku": s, "warehouse": w, "qty": q, "unit_price": 100}
                for i, (s, w, q) in enumerate(lines, start=1)])

        order("ord1", "captured", 0, T, [("A", "north", 2), ("B", "north", 1)])
        order("ord2", "authorized", 1, T, [("A", "north", 1), ("C", "south", 3)])
        order("ord3", "delivered", 0, T, [("C", "south", 1)])
        order("ord4", "cancelled", 0, T, [("A", "north", 5)])  # never ships: not a sale
        order("ord5", "captured", 0, NOW - timedelta(days=40), [("B", "north", 1)])  # before the window
        conn.execute(sa.insert(stock_refusals), [
            {"at": T, "sku": "A", "warehouse": "north", "requested": 3, "available": 1},
            {"at": T, "sku": "C", "warehouse": "south", "requested": 9, "available": 4},
            {"at": T + H, "sku": "C", "warehouse": "south", "requested": 9, "available": 4},
            {"at": NOW - timedelta(days=31), "sku": "A", "warehouse": "north", "requested": 3, "available": 0}])
    events = (
        _journey("o1", "north", [("packed", T + 2 * H), ("handed_to_carrier", T + 5 * H),
                                 ("delivered", T + 29 * H)], placed=T)
        + _journey("o2", "north", [("packed", T + 4 * H), ("handed_to_carrier", T + 6 * H),
                                   ("delivered", T + 54 * H)], placed=T)
        + _journey("o3", "north", [("packed", T + 10 * H), ("handed_to_carrier", T + 11 * H),
                                   ("delivered", T + 35 * H)], region="RJ", placed=T)
        + _journey("o4", "north", [("approved", T), ("packed", T + 6 * H), ("handed_to_carrier", T + 10 * H)])
        # A feed with no packed event: pick/pack runs to the handoff.
        + _journey("o5", "south", [("handed_to_carrier", T + 8 * H)], placed=T)
        # Started before the window, packed inside it: counted.
        + _journey("o7", "south", [("approved", SINCE - 5 * H), ("handed_to_carrier", SINCE + H)])
        # Wholly before the window: not counted.
        + _journey("o6", "north", [("packed", SINCE - 50 * H), ("handed_to_carrier", SINCE - 40 * H),
                                   ("delivered", SINCE - 2 * H)], placed=SINCE - 60 * H)
        + [_return("r1", "A", 1, "fit", T), _return("r2", "A", 1, "not_as_described", T + H),
           _return("r3", "C", 2, "damaged", T, wh="south"), _return("r4", "C", 1, "fit", T + H, wh="south"),
           _return("r0", "A", 5, "fit", NOW - timedelta(days=40))]
    )
    SqlFulfillmentStore(eng).ingest(events, NOW)
    eng.dispose()


@pytest.fixture
def report(db_url):
    build_store(db_url)
    eng = _engine(db_url)
    yield SqlFulfillmentAnalytics(eng).report(SINCE, NOW)
    eng.dispose()


def _wh(report, wid):
    return next(w for w in report.warehouses if w.warehouse == wid)


def _sku(report, sku):
    return next(s for s in report.skus if s.sku == sku)


def test_pick_pack_percentiles_interpolate_between_ranks_like_percentile_cont(report):
    # north: 2, 4, 6 (from approved), 10 h -> p50 at rank 1.5 = 5.0; p90 at rank 2.7 = 6 + 0.7 * 4 = 8.8
    north = _wh(report, "north")
    assert (north.pick_pack_p50_h, north.pick_pack_p90_h, north.pick_pack_orders) == (5.0, 8.8, 4)
    # south: 8 h (to the handoff, no packed event) and 6 h (started before the window) -> 7.0 and 7.8
    south = _wh(report, "south")
    assert (south.pick_pack_p50_h, south.pick_pack_p90_h) == (7.0, 7.8)


def test_handoff_delay_runs_from_packed_to_handed_to_carrier(report):
    assert _wh(report, "north").handoff_delay_p50_h == 2.5  # 1, 2, 3, 4 h
    assert _wh(report, "south").handoff_delay_p50_h is None  # no packed events


def test_transit_is_measured_per_lane_of_warehouse_and_destination_zone(report):
    lanes = {(lane.warehouse, lane.zone): lane for lane in report.lanes}
    assert set(lanes) == {("north", "SP"), ("north", "RJ")}  # o6 was delivered before the window
    sp = lanes[("north", "SP")]
    assert (sp.transit_p50_h, sp.transit_p90_h, sp.deliveries) == (36.0, 45.6, 2)  # 24 h and 48 h
    assert (lanes[("north", "RJ")].transit_p50_h, lanes[("north", "RJ")].deliveries) == (24.0, 1)


def test_split_shipment_rate_counts_orders_shipped_from_more_than_one_warehouse(report):
    # north ships ord1 and ord2 (split); south ships ord2 (split) and ord3; the cancelled ord4 never ships
    assert _wh(report, "north").split_shipment_rate == 0.5
    assert _wh(report, "south").split_shipment_rate == 0.5
    assert (_wh(report, "north").orders, _wh(report, "south").orders) == (2, 2)


def test_backorder_rate_is_refused_lines_over_refused_and_ordered_lines(report):
    assert _sku(report, "A").backorder_rate == round(1 / 3, 4)  # 1 refused, 2 ordered (the older one is out)
    assert _sku(report, "B").backorder_rate == 0.0
    assert _sku(report, "C").backorder_rate == 0.5  # 2 refused, 2 ordered
    assert _wh(report, "north").backorder_rate == 0.25  # 1 refused, 3 lines
    assert _wh(report, "south").backorder_rate == 0.5  # 2 refused, 2 lines


def test_return_rate_is_units_returned_over_units_sold_with_reasons_most_frequent_first(report):
    a, c = _sku(report, "A"), _sku(report, "C")
    assert (a.units_sold, a.units_returned, a.return_rate) == (3, 2, round(2 / 3, 4))
    assert a.returns_by_reason == {"fit": 1, "not_as_described": 1}  # the old return is outside the window
    assert a.listing_return_rate() == pytest.approx(2 / 3)
    assert (c.return_rate, list(c.returns_by_reason.items())) == (0.75, [("damaged", 2), ("fit", 1)])
    assert c.listing_return_rate() == pytest.approx(1 / 4)
    assert _sku(report, "B").return_rate == 0.0


def test_inventory_age_is_the_median_unit_on_hand_first_in_first_out(report):
    # A at north holds 10: 2 received 2 days ago, 6 ten days ago, 2 of the 8 from 30 days ago -> median 10 days
    assert _sku(report, "A").inventory_age_p50_d == 10.0
    # C: 4 units 1 day old (north) and 3 of the 5 received 20 days ago (south) -> median unit 1 day old
    assert _sku(report, "C").inventory_age_p50_d == 1.0
    assert _sku(report, "B").inventory_age_p50_d is None  # nothing on hand
    # north: 4@1, 2@2, 6@10, 2@30 days -> the 7th of 14 units is 10 days old; south: 3@20
    assert (_wh(report, "north").inventory_age_p50_d, _wh(report, "south").inventory_age_p50_d) == (10.0, 20.0)


def test_the_analytics_route_answers_admins_with_the_contract_shape(db_url):
    build_store(db_url)
    container = build_container(Settings(database_url=db_url, promise_stats_refresh_s=0), clock=FixedClock(NOW))
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        r = client.get("/v1/analytics/fulfillment?days=30", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200
        body = r.json()
        north = next(w for w in body["warehouses"] if w["warehouse"] == "north")
        assert {"warehouse", "pick_pack_p50_h", "pick_pack_p90_h", "handoff_delay_p50_h", "split_shipment_rate",
                "backorder_rate", "inventory_age_p50_d"} <= set(north)
        assert north["pick_pack_p50_h"] == 5.0
        a = next(s for s in body["skus"] if s["sku"] == "A")
        assert {"sku", "return_rate", "returns_by_reason", "backorder_rate", "inventory_age_p50_d"} <= set(a)
        assert a["returns_by_reason"] == {"fit": 1, "not_as_described": 1}
        r = client.get("/v1/analytics/fulfillment?days=30", headers={"Authorization": f"Bearer {shop}"})
        assert r.status_code == 403
        r = client.get("/v1/analytics/fulfillment?days=0", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 422 and "days" in str(r.json()["error"])
        r = client.get("/v1/analytics/fulfillment?days=5000", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "days"
        r = client.get("/v1/analytics/fulfillment?days=18446744073709551616",  # beyond 64 bits: still a 422
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "days"
        metrics = client.get("/metrics").text  # the same numbers for Grafana
        assert 'shopfloor_fulfillment_pick_pack_p50_hours{warehouse="north"} 5.0' in metrics
        assert 'shopfloor_fulfillment_returned_units{reason="damaged",sku="C"} 2.0' in metrics


def test_rules_on_the_analytics_signals_flag_listings_and_degrade_promises_in_the_store(db_url):
    from shopfloor.store.tower import TowerRepository
    from shopfloor.tower.rules import parse_rules
    from shopfloor.tower.service import build_rule_engine

    build_store(db_url)
    container = build_container(Settings(database_url=db_url), clock=FixedClock(NOW))
    rules = parse_rules({"rules": [
        {"name": "north_slow", "when": "pack_p90_h_north > 8",
         "actions": [{"type": "degrade_promises", "warehouse": "north", "extra_days": 1}]},
        {"name": "a_listing", "when": "listing_return_rate_A > 0.5",
         "actions": [{"type": "flag_listing", "sku": "A"}, {"type": "suppress_promotion", "sku": "A"}]},
        {"name": "old_a", "when": "inventory_age_p50_d_A >= 10", "actions": [{"type": "propose_promotion", "sku": "A"}]},
        {"name": "c_split", "when": "split_rate_south >= 0.5 and backorder_rate_C >= 0.5 and return_rate_C > 0.7",
         "actions": [{"type": "propose_promotion", "sku": "C"}]},
    ]})
    outcomes = {o.rule: o for o in build_rule_engine(container, rules).run_once()}
    assert all(outcomes[name].fired for name in ("north_slow", "a_listing", "old_a", "c_split")), outcomes
    repo = TowerRepository(container.engine)
    flags = {(f["sku"], f["kind"]): f for f in repo.active_listing_flags(NOW)}
    assert flags[("A", "flag_listing")]["reasons"] == {"fit": 1, "not_as_described": 1}
    assert ("A", "propose_promotion") not in flags  # suppressed by a_listing first
    assert ("C", "propose_promotion") in flags
    assert repo.get_degradation("north", NOW)["extra_days"] == 1
    container.close()



def test_inventory_age_median_unit_exactly_at_half_the_units_is_the_newer_arrival(db_url):
    build_store(db_url)
    eng = _engine(db_url)
    with eng.begin() as conn:
        conn.execute(sa.insert(skus).values(sku="D", name="D", category="c", price=100, currency="BRL",
                                            updated_at=NOW))
        conn.execute(sa.insert(stock).values(sku="D", warehouse="north", on_hand=6, reserved=0, updated_at=NOW))
        for qty, days in ((5, 40), (3, 9), (3, 5)):  # FIFO: the 6 on hand are the 3@9 and 3@5 days; 5@40 is gone
            record_receipt(conn, "D", "north", qty, NOW - timedelta(days=days), "count")
    report = SqlFulfillmentAnalytics(eng).report(SINCE, NOW)
    eng.dispose()
    # D: 3 units 5 days old, 3 units 9 days old: the newest 3 are exactly half of 6 -> the 3rd unit, 5 days old
    assert _sku(report, "D").inventory_age_p50_d == 5.0
    # north now: 4@1, 2@2, 3@5, 3@9, 6@10, 2@30 days (20 units); newest first the running total is 4, 6, 9, 12: the
    # 10th unit is among the 3@9 -> 9 days
    assert _wh(report, "north").inventory_age_p50_d == 9.0
    assert _sku(report, "A").inventory_age_p50_d == 10.0  # unchanged by D


def test_the_order_line_window_is_read_from_covering_indexes(db_url):
    from shopfloor.store.analytics import _ORDER_LINES

    eng = _engine(db_url)
    names = {ix["name"] for table in ("orders", "order_lines") for ix in sa.inspect(eng).get_indexes(table)}
    assert {"ix_orders_created_cover", "ix_order_lines_cover"} <= names
    if eng.dialect.name == "sqlite":  # the plan reads both tables from their indexes alone
        with eng.connect() as conn:
            plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + _ORDER_LINES.replace(":since", "?").replace(":until", "?"),
                ("2024-01-01 00:00:00.000000", "2024-02-01 00:00:00.000000")))
        assert "COVERING INDEX ix_orders_created_cover" in plan, plan
        assert "COVERING INDEX ix_order_lines_cover" in plan, plan
    eng.dispose()


def test_the_report_on_three_connections_at_once_equals_the_report_one_query_after_another(db_url):
    build_store(db_url)
    eng = _engine(db_url)
    try:
        assert SqlFulfillmentAnalytics(eng, parallel=3).report(SINCE, NOW) == \
            SqlFulfillmentAnalytics(eng, parallel=1).report(SINCE, NOW)
    finally:
        eng.dispose()


def test_the_service_runs_the_report_on_the_configured_number_of_connections(db_url):
    from shopfloor.bootstrap import build_fulfillment_analytics

    container = build_container(Settings(database_url=db_url, analytics_parallel=2))
    try:
        assert build_fulfillment_analytics(container).parallel == 2
    finally:
        container.engine.dispose()
