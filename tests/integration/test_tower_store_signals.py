"""Rules about one processor, warehouse or SKU read their signals from the store, with no integration bound."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.orders.payments_service import ProcessorHealthStore
from shopfloor.store.promise_tables import fulfillment_events
from shopfloor.tower import load_rules_file
from shopfloor.tower.service import StoreSignals, build_rule_engine
from tests.support.store import new_key, seed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"


def _store(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"de-central": ("eu-central", "DE", ["1"]), "gb-south": ("gb-south", "GB", ["E"])},
         {"FLASH-001": 1999, "85123A": 295, "21733": 295}, {("FLASH-001", "de-central"): 10})
    return container


def test_breaker_feed_and_cover_signals_come_from_the_store(db_url):
    container = _store(db_url)
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        r = client.post("/v1/checkouts", headers={"Authorization": f"Bearer {shop}", "Idempotency-Key": "k1"},
                        json={"lines": [{"sku": "FLASH-001", "qty": 4}],
                              "ship_to": {"country": "DE", "postal_code": "10115"}, "payment": {"token": "tok_ok"}})
        assert r.status_code == 201, r.text
    now = datetime.now(timezone.utc)
    health = ProcessorHealthStore(container.engine, FixedClock(now))
    snap = {"window_failure_pct": 0.0, "counters": {}}  # two server processes' views of one processor
    health.write("host:1:a", [{**snap, "processor": "backup-eu", "breaker_state": "open", "window_calls": 10,
                               "window_failures": 8}])
    health.write("host:2:b", [{**snap, "processor": "backup-eu", "breaker_state": "closed", "window_calls": 10,
                               "window_failures": 0}])
    with container.engine.begin() as conn:
        conn.execute(fulfillment_events.insert().values(
            event_id="e1", order_id="o1", type="picked", at=now - timedelta(hours=1), warehouse="de-central",
            received_at=now - timedelta(minutes=40)))
    signals = StoreSignals(container.engine, FixedClock(now))
    got = signals.values({"breaker_open_backup_eu", "breaker_state_backup_eu", "payment_success_rate_backup_eu",
                          "feed_age_s_de_central", "feed_age_s_gb_south", "stock_cover_days_FLASH_001",
                          "stock_cover_days_85123A", "traffic_rpm"})
    assert got["breaker_open_backup_eu"] == 1 and got["breaker_state_backup_eu"] == "open"  # the worst process
    assert got["payment_success_rate_backup_eu"] == 0.6  # 12 of 20 window calls succeeded
    assert got["feed_age_s_de_central"] == 2400.0
    assert "feed_age_s_gb_south" not in got  # no event ever: no value
    assert got["stock_cover_days_FLASH_001"] == 6 / (4 / 28)  # 6 available, 4 ordered in 28 days
    assert "stock_cover_days_85123A" not in got and "traffic_rpm" not in got  # no stock row; not ours
    container.close()


def test_the_example_rules_file_evaluates_on_a_demo_shaped_store_instead_of_skipping(db_url):
    container = _store(db_url)
    now = datetime.now(timezone.utc)
    ProcessorHealthStore(container.engine, FixedClock(now)).write(
        "host:1:a", [{"processor": "primary", "breaker_state": "open", "window_calls": 10, "window_failures": 10,
                      "window_failure_pct": 100.0, "counters": {}}])
    with container.engine.begin() as conn:
        conn.execute(fulfillment_events.insert().values(
            event_id="e1", order_id="o1", type="picked", at=now, warehouse="de-central", received_at=now))
    engine = build_rule_engine(container, load_rules_file(EXAMPLE))
    outcomes = {o.rule: o for o in engine.run_once(dry_run=True)}
    assert outcomes["primary_processor_failing"].fired
    assert not outcomes["germany_feed_stale"].skipped and not outcomes["germany_feed_stale"].fired
    assert not outcomes["traffic_surge"].skipped
    assert outcomes["flash_sale_sold_out"].skipped  # nothing sold yet: no cover figure, and the rule says so
    container.close()
