"""Restock HTTP routes and CLI against a real, migrated database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.store.tables import order_lines, orders, skus, stock, warehouses
from tests.support.store import new_key

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _seed(engine):
    with engine.begin() as conn:
        conn.execute(sa.insert(warehouses), [
            {"id": "W1", "region": "north", "country": "DE", "postal_prefixes": [], "updated_at": NOW},
            {"id": "W2", "region": "south", "country": "DE", "postal_prefixes": [], "updated_at": NOW},
        ])
        conn.execute(sa.insert(skus), [
            {"sku": "TEA-1", "name": "Green tea", "category": "tea", "price": 499, "currency": "EUR", "updated_at": NOW},
            {"sku": "TEA-2", "name": "Black tea", "category": "tea", "price": 399, "currency": "EUR", "updated_at": NOW},
            {"sku": "MUG-1", "name": "Mug", "category": "kitchen", "price": 999, "currency": "EUR", "updated_at": NOW},
        ])
        conn.execute(sa.insert(stock), [
            {"sku": "TEA-1", "warehouse": "W1", "on_hand": 6, "reserved": 2, "updated_at": NOW},
            {"sku": "TEA-2", "warehouse": "W1", "on_hand": 80, "reserved": 0, "updated_at": NOW},
            {"sku": "MUG-1", "warehouse": "W1", "on_hand": 50, "reserved": 0, "updated_at": NOW},
        ])
        # 60 days of history: TEA-1 sells 8/day, TEA-2 1/day; cancelled orders are not demand
        n = 0
        for d in range(1, 61):
            day = NOW - timedelta(days=d)
            for sku, qty, status in (("TEA-1", 8, "captured"), ("TEA-2", 1, "shipped"), ("MUG-1", 30, "cancelled")):
                n += 1
                oid = f"o{n}"
                conn.execute(sa.insert(orders).values(
                    id=oid, status=status, ship_to={}, payment={}, total=0, currency="EUR",
                    created_at=day, updated_at=day,
                ))
                conn.execute(sa.insert(order_lines).values(
                    order_id=oid, line_no=1, sku=sku, warehouse="W1", qty=qty, unit_price=100,
                ))


@pytest.fixture
def client(db_url, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[defaults]\nlead_time_days = 7\n[skus."TEA-1"]\nmoq = 20\npack_size = 12\n')
    container = build_container(Settings(database_url=db_url, restock_policy_file=policy), clock=FixedClock(NOW))
    _seed(container.engine)
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    # The real app: its Authenticator over the api_keys table and its error handlers (the lifespan closes the
    # container on exit).
    with TestClient(create_app(container)) as c:
        c.container = container
        c.admin, c.shop = _bearer(admin), _bearer(shop)
        yield c


def _po(**over):
    body = {"sku": "TEA-1", "warehouse": "W1", "qty": 24, "expected_at": "2026-03-06T09:00:00Z", "supplier": "leafco"}
    body.update(over)
    return body


def test_put_creates_then_updates_a_purchase_order(client):
    r = client.put("/v1/purchase-orders/PO-1", json=_po(), headers=client.admin)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open" and r.json()["qty"] == 24
    r = client.put("/v1/purchase-orders/PO-1", json=_po(qty=36), headers=client.admin)
    assert r.status_code == 200 and r.json()["qty"] == 36
    r = client.get("/v1/purchase-orders", headers=client.admin)
    assert r.status_code == 200, r.text
    assert [(p["po_id"], p["qty"]) for p in r.json()] == [("PO-1", 36)]


def test_received_purchase_order_is_final(client):
    assert client.put("/v1/purchase-orders/PO-2", json=_po(status="received"), headers=client.admin).status_code == 201
    # an identical replay is fine, a change is a conflict
    assert client.put("/v1/purchase-orders/PO-2", json=_po(status="received"), headers=client.admin).status_code == 200
    r = client.put("/v1/purchase-orders/PO-2", json=_po(status="open"), headers=client.admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"


def _refused(response, status: int, code: str) -> bool:
    return response.status_code == status and response.json()["error"]["code"] == code


def test_purchase_order_routes_need_the_right_scope(client):
    assert _refused(client.put("/v1/purchase-orders/PO-3", json=_po()), 401, "unauthorized")
    assert _refused(client.put("/v1/purchase-orders/PO-3", json=_po(), headers=_bearer("sf_no-such-key")),
                    401, "unauthorized")
    assert _refused(client.put("/v1/purchase-orders/PO-3", json=_po(), headers=client.shop), 403, "forbidden")
    assert _refused(client.get("/v1/plans/restock", headers=client.shop), 403, "forbidden")
    assert _refused(client.get("/v1/purchase-orders", headers=client.shop), 403, "forbidden")
    assert client.get("/v1/purchase-orders", headers=client.admin).json() == []  # the refused PUTs wrote nothing


@pytest.mark.parametrize("body, field", [
    (_po(qty=0), "qty"), (_po(expected_at="2026-03-06T09:00:00"), "expected_at"), (_po(status="lost"), "status"),
    ({**_po(), "colour": "red"}, "colour"),
])
def test_bad_purchase_order_bodies_are_rejected_with_the_field(client, body, field):
    r = client.put("/v1/purchase-orders/PO-4", json=body, headers=client.admin)
    assert r.status_code == 422
    assert field in r.text


def test_unknown_sku_or_warehouse_is_a_clear_422(client):
    r = client.put("/v1/purchase-orders/PO-5", json=_po(sku="NOPE"), headers=client.admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_sku"
    r = client.put("/v1/purchase-orders/PO-5", json=_po(warehouse="W9"), headers=client.admin)
    assert r.status_code == 422 and "W9" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/plans/restock", "/v1/purchase-orders"])
@pytest.mark.parametrize("param, value", [("sku", "A\x00B"), ("sku", ""), ("warehouse", "W 1"), ("warehouse", "x" * 65)])
def test_filters_take_only_well_formed_ids(client, path, param, value):
    r = client.get(path, params={param: value}, headers=client.admin)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == param


def test_restock_plan_orders_the_fast_seller_and_flags_it_as_a_sell_out_risk(client):
    client.put("/v1/purchase-orders/PO-6", json=_po(qty=12), headers=client.admin)
    client.put("/v1/purchase-orders/PO-7", json=_po(qty=99, status="cancelled"), headers=client.admin)
    r = client.get("/v1/plans/restock", headers=client.admin)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["as_of"] == "2026-03-02"
    lines = {(ln["sku"], ln["warehouse"]): ln for ln in plan["lines"]}
    tea = lines[("TEA-1", "W1")]
    assert tea["on_order"] == 12  # the cancelled PO does not count
    assert tea["inventory_position"] == 6 + 12 - 2
    assert tea["mean_daily_demand"] == pytest.approx(8, rel=0.2)
    assert tea["order_qty"] >= 20 and tea["order_qty"] % 12 == 0
    assert tea["order_up_to"] > tea["reorder_point"] > tea["inventory_position"]
    assert tea["projected_stockout_date"] == "2026-03-03"  # 4 available, ~8 a day, the PO lands on the 6th
    assert lines[("MUG-1", "W1")]["mean_daily_demand"] == 0  # only cancelled orders: no demand
    risks = {r["sku"]: r for r in plan["sell_out_risks"]}
    assert "suppress_promotion" in risks["TEA-1"]["actions"]
    assert [a["sku"] for a in risks["TEA-1"]["alternatives"]] == ["TEA-2"]
    only = client.get("/v1/plans/restock", params={"sku": "TEA-2"}, headers=client.admin).json()
    assert [ln["sku"] for ln in only["lines"]] == ["TEA-2"]


def test_plans_share_the_containers_model_cache_and_new_orders_replan(client):
    first = client.get("/v1/plans/restock", headers=client.admin).json()
    cache = client.container.services["restock.cache"]
    assert cache.stats()["level_misses"] == 1
    again = client.get("/v1/plans/restock", headers=client.admin).json()
    assert cache.stats()["level_hits"] == 1 and again == first  # the same history: nothing replayed
    # an order on a past day changes the history: the plan is made again from it
    day = NOW - timedelta(days=3)
    with client.container.engine.begin() as conn:
        conn.execute(sa.insert(orders).values(id="late", status="captured", ship_to={}, payment={}, total=0,
                                              currency="EUR", created_at=day, updated_at=day))
        conn.execute(sa.insert(order_lines).values(order_id="late", line_no=1, sku="TEA-2", warehouse="W1",
                                                   qty=40, unit_price=100))
    later = client.get("/v1/plans/restock", headers=client.admin).json()
    assert cache.stats()["level_misses"] == 2
    tea2 = lambda plan: next(ln for ln in plan["lines"] if ln["sku"] == "TEA-2")  # noqa: E731
    assert tea2(later)["mean_daily_demand"] > tea2(first)["mean_daily_demand"]


def test_restock_plan_runs_share_the_cache_folder(client, db_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app
    from shopfloor.planning import restock_service

    replays = []
    real = restock_service.replay_history
    monkeypatch.setattr(restock_service, "replay_history", lambda *a, **k: replays.append(1) or real(*a, **k))
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("SHOPFLOOR_RESTOCK_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    first = runner.invoke(app, ["restock", "plan", "--json"])
    assert first.exit_code == 0, first.output
    assert len(replays) == 1 and list((tmp_path / "cache" / "levels").iterdir())
    second = runner.invoke(app, ["restock", "plan", "--json"])  # a new container, as a new process has
    assert second.exit_code == 0 and second.stdout == first.stdout
    assert len(replays) == 1, "the second run replayed the history again"


def test_no_model_cache_when_turned_off(db_url):
    from shopfloor.bootstrap import build_restock_planner

    container = build_container(Settings(database_url=db_url, restock_cache_models=0), clock=FixedClock(NOW))
    try:
        assert build_restock_planner(container).cache is None
    finally:
        container.close()


def test_cli_imports_purchase_orders_and_prints_the_plan(client, db_url, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    runner = CliRunner()
    good = tmp_path / "pos.csv"
    good.write_text("po_id,sku,warehouse,qty,expected_at,supplier\nA1,TEA-2,W1,10,2026-03-10,leafco\nA2,MUG-1,W1,5,2026-03-12T08:00:00Z,\n")
    r = runner.invoke(app, ["restock", "import-pos", str(good), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"imported": 2, "created": 2, "updated": 0}
    bad = tmp_path / "bad.csv"
    bad.write_text("po_id,sku,warehouse,qty,expected_at\nB1,TEA-2,W1,ten,2026-03-10\n")
    r = runner.invoke(app, ["restock", "import-pos", str(bad)])
    assert r.exit_code == 2 and "line 2: qty" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["restock", "plan", "--csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith("sku,warehouse,supplier")
    r = runner.invoke(app, ["restock", "plan", "--json"])
    assert json.loads(r.stdout)["summary"]["lines"] == 3
    r = runner.invoke(app, ["restock", "plan"])
    assert r.exit_code == 0 and "Restock actions" in r.output and "Sell-out risks" in r.output


def test_demo_summary_prints_actions_and_risks(client, monkeypatch):
    from shopfloor.cli import output
    from shopfloor.cli.restock_cmd import show_restock_summary

    monkeypatch.setattr(output.console, "width", 80)  # a plain terminal: nothing may be cut or folded
    with output.console.capture() as cap:
        show_restock_summary(client.container, top=3)
    text = cap.get()
    assert "TEA-1" in text and "no promo" in text and "TEA-2" in text
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_plan_and_import_need_a_reachable_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["restock", "plan", "--json"])
    assert r.exit_code == 2 and "database_url" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["restock", "plan", "--json", "--csv"])
    assert r.exit_code == 2 and "choose one" in r.output


def test_plan_takes_a_fill_rate_target_and_a_higher_target_orders_up_to_more(client):
    lines = {}
    for target in (0.90, 0.99):
        r = client.get("/v1/plans/restock", params={"fill_rate": target, "sku": "TEA-1"}, headers=client.admin)
        assert r.status_code == 200, r.text
        [ln] = r.json()["lines"]
        assert ln["fill_rate_target"] == target
        assert 0.5 <= ln["service_level"] < 1  # the quantile level chosen to meet it
        lines[target] = ln
    assert lines[0.99]["order_up_to"] > lines[0.90]["order_up_to"]
    assert lines[0.99]["service_level"] > lines[0.90]["service_level"]
    r = client.get("/v1/plans/restock", params={"fill_rate": 1.5}, headers=client.admin)
    assert r.status_code == 422 and "fill_rate" in r.text


def test_policy_file_fill_rate_is_the_default_target(db_url, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[defaults]\nlead_time_days = 7\nfill_rate = 0.97\n")
    container = build_container(Settings(database_url=db_url, restock_policy_file=policy), clock=FixedClock(NOW))
    _seed(container.engine)
    from shopfloor.bootstrap import build_restock_planner

    try:
        plan = build_restock_planner(container).plan()
    finally:
        container.close()
    assert {ln.fill_rate_target for ln in plan.lines} == {0.97}


def test_cli_plan_takes_fill_rate_and_refuses_a_bad_one_naming_the_option(client, db_url, monkeypatch):
    import json

    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    runner = CliRunner()
    r = runner.invoke(app, ["restock", "plan", "--json", "--fill-rate", "0.98"])
    assert r.exit_code == 0, r.output
    assert {ln["fill_rate_target"] for ln in json.loads(r.stdout)["lines"]} == {0.98}
    r = runner.invoke(app, ["restock", "plan", "--fill-rate", "1.2"])
    assert r.exit_code == 2 and "--fill-rate" in r.output and "Traceback" not in r.output
