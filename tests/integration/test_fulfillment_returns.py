"""Returns come in through the fulfillment ingest API and `shopfloor fulfillment import`: recorded, and put back on
hand after inspection when they restock. On real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shopfloor.cli.main import app as cli_app
from shopfloor.fulfillment import FulfillmentEvent
from shopfloor.store.analytics_tables import stock_receipts
from shopfloor.store.promise import SqlFulfillmentStore
from shopfloor.store.promise_tables import fulfillment_events
from shopfloor.store.tables import stock
from tests.integration.test_promise_store_and_api import NOW, make_app, seed


def _engine(url):
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def _on_hand(url, sku="sku1", wh="north"):
    eng = _engine(url)
    with eng.connect() as conn:
        value = conn.execute(sa.select(stock.c.on_hand).where(stock.c.sku == sku, stock.c.warehouse == wh)).scalar()
    eng.dispose()
    return value


def _returned(event_id="r1", restock=True, qty=2, reason="fit", at=NOW - timedelta(hours=1), sku="sku1"):
    return FulfillmentEvent(event_id=event_id, order_id="o1", type="returned", at=at, warehouse="north",
                            sku=sku, qty=qty, reason=reason, restock=restock)


def test_a_restocking_return_is_back_on_hand_only_once_its_inspection_is_over(db_url):
    seed(db_url)
    eng = _engine(db_url)
    store = SqlFulfillmentStore(eng, inspection_delay_h=24.0)
    result = store.ingest([_returned()], NOW)
    assert (result.accepted, result.restocked_units) == (1, 0)
    assert _on_hand(db_url) == 50
    assert store.apply_due_restocks(NOW + timedelta(hours=22)) == 0  # returned at NOW-1h: due at NOW+23h
    assert store.apply_due_restocks(NOW + timedelta(hours=23)) == 2
    assert _on_hand(db_url) == 52
    assert store.apply_due_restocks(NOW + timedelta(hours=30)) == 0  # applied once only
    again = store.ingest([_returned()], NOW + timedelta(hours=30))  # a redelivered event changes nothing
    assert (again.accepted, again.duplicates, _on_hand(db_url)) == (0, 1, 52)
    with eng.connect() as conn:
        receipts = conn.execute(sa.select(stock_receipts.c.qty, stock_receipts.c.received_at,
                                          stock_receipts.c.source)).all()
    assert [(q, at, src) for q, at, src in receipts] == [(2, NOW + timedelta(hours=23), "return")]
    eng.dispose()


def test_a_return_that_does_not_restock_is_recorded_and_leaves_stock_alone(db_url):
    seed(db_url)
    eng = _engine(db_url)
    store = SqlFulfillmentStore(eng, inspection_delay_h=0.0)
    store.ingest([_returned(restock=False, reason="damaged", qty=3)], NOW)
    assert store.apply_due_restocks(NOW + timedelta(days=5)) == 0
    assert _on_hand(db_url) == 50
    with eng.connect() as conn:
        row = conn.execute(sa.select(fulfillment_events.c.sku, fulfillment_events.c.qty, fulfillment_events.c.reason,
                                     fulfillment_events.c.restock)).one()
    assert tuple(row) == ("sku1", 3, "damaged", False)
    eng.dispose()


def test_a_restocking_return_with_no_delay_is_back_on_hand_in_the_same_call(db_url):
    seed(db_url)
    eng = _engine(db_url)
    result = SqlFulfillmentStore(eng, inspection_delay_h=0.0).ingest([_returned(qty=4)], NOW)
    assert result.restocked_units == 4 and _on_hand(db_url) == 54
    eng.dispose()


def test_the_ingest_api_takes_returns_and_names_the_field_of_a_bad_one(db_url):
    seed(db_url)
    app, auth = make_app(db_url)
    at = (NOW - timedelta(hours=2)).isoformat()
    good = {"event_id": "r1", "order_id": "o1", "type": "returned", "at": at, "warehouse": "north",
            "sku": "sku1", "qty": 1, "reason": "not_as_described"}
    with TestClient(app) as client:
        post = lambda ev: client.post("/v1/fulfillment/events", json={"events": [ev]},  # noqa: E731
                                      headers=auth["ingest"])
        r = post({**good, "reason": "too_big"})
        assert r.status_code == 422 and "events.0.reason" in json.dumps(r.json()["error"]["details"])
        r = post({k: v for k, v in good.items() if k != "qty"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.0.qty"
        r = post({**good, "qty": 0})
        assert r.status_code == 422 and "events.0.qty" in json.dumps(r.json()["error"]["details"])
        r = post({**good, "sku": "nope"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.0.sku"
        r = post({**good, "warehouse": "nowhere", "restock": True})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.0.warehouse"
        r = post(good)
        assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}
    eng = _engine(db_url)
    with eng.connect() as conn:  # the refused events wrote nothing
        assert conn.execute(sa.select(sa.func.count()).select_from(fulfillment_events)).scalar() == 1
    eng.dispose()


def test_fulfillment_import_loads_returns_and_names_a_bad_reason(db_url, tmp_path, monkeypatch):
    seed(db_url)
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("SHOPFLOOR_RETURNS_INSPECTION_DELAY_H", "0")
    # the command's clock is the real one: events within fulfillment_max_age_days of it
    at = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    rows = [{"event_id": "r1", "order_id": "o1", "type": "returned", "at": at, "warehouse": "north",
             "sku": "sku1", "qty": "2", "reason": "fit", "restock": "true"},
            {"event_id": "r2", "order_id": "o2", "type": "returned", "at": at, "warehouse": "north",
             "sku": "sku1", "qty": "1", "reason": "quality", "restock": ""}]
    path = tmp_path / "returns.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    r = CliRunner().invoke(cli_app, ["fulfillment", "import", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accepted"] == 2
    assert _on_hand(db_url) == 52  # r1 restocks at once (no inspection delay); r2 is recorded only
    rows[0] = {**rows[0], "event_id": "r3", "reason": "wrong colour"}
    pd.DataFrame(rows).to_csv(path, index=False)
    r = CliRunner().invoke(cli_app, ["fulfillment", "import", str(path)])
    assert r.exit_code == 2 and "row 2: reason must be one of" in r.output and "Traceback" not in r.output


def test_the_worker_puts_returns_back_on_hand_once_their_inspection_is_over(db_url, monkeypatch):
    seed(db_url)
    real_now = datetime.now(timezone.utc)
    eng = _engine(db_url)
    store = SqlFulfillmentStore(eng, inspection_delay_h=1.0)
    store.ingest([_returned(qty=3, at=real_now - timedelta(hours=2))], real_now - timedelta(hours=3))
    assert _on_hand(db_url) == 50  # not due when it came in
    eng.dispose()
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    r = CliRunner().invoke(cli_app, ["worker", "--once"])
    assert r.exit_code == 0, r.output
    assert _on_hand(db_url) == 53
