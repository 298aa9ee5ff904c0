"""The demo's simulated shoppers and fulfillment: what they send, so every dashboard panel has a story to tell."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

from shopfloor.demo import browse, demo_settings_env, load_catalog
from shopfloor.demo.steps import SIMULATED_DAYS_AHEAD, simulated_journey

NOW = datetime(2026, 12, 3, 8, 30, tzinfo=timezone.utc)  # a Thursday


def test_a_buyer_browses_to_the_checkout_page_and_a_window_shopper_does_not():
    catalog = load_catalog()
    weights = [int(c["invoices"]) for c in catalog]
    rng = random.Random(1)
    buyer = browse(rng, catalog, weights, ["85123A", "21733"], True, NOW)
    kinds = [e["type"] for e in buyer]
    assert kinds.count("checkout_started") == 1 and kinds.count("add_to_cart") == 2
    assert {e["sku"] for e in buyer if e["type"] == "product_view"} == {"85123A", "21733"}
    assert all(e["at"] == NOW.isoformat() for e in buyer) and len({e["session"] for e in buyer}) == 1
    shoppers = [browse(rng, catalog, weights, None, False, NOW) for _ in range(200)]
    assert not any(e["type"] == "checkout_started" for visit in shoppers for e in visit)
    carts = sum(any(e["type"] == "add_to_cart" for e in visit) for visit in shoppers)
    assert 0 < carts < 100  # some carts, most visits end without one


def test_simulated_orders_are_delivered_in_order_on_weekdays_within_the_accepted_horizon():
    rng = random.Random(2)
    for _ in range(500):
        journey = simulated_journey(rng, NOW, "gb-south", rng.choice(["GB", "DE"]))
        kinds = [k for k, _ in journey]
        times = [t for _, t in journey]
        assert kinds == ["approved", "packed", "handed_to_carrier", "delivered"]
        assert times == sorted(times) and times[0] > NOW
        assert journey[2][1].weekday() < 5 and journey[3][1].weekday() < 5  # carriers rest at weekends
        assert (times[-1] - NOW).days < SIMULATED_DAYS_AHEAD


def test_the_demo_worker_runs_the_tower_rules_every_second_and_accepts_the_simulated_days_ahead(tmp_path):
    env = demo_settings_env(tmp_path / "rules.yaml")
    assert Path(env["SHOPFLOOR_TOWER_RULES_FILE"]) == (tmp_path / "rules.yaml").resolve()
    assert float(env["SHOPFLOOR_TOWER_RULES_INTERVAL_S"]) <= 1
    assert float(env["SHOPFLOOR_FULFILLMENT_MAX_FUTURE_H"]) == SIMULATED_DAYS_AHEAD * 24


def test_the_packaged_demo_rules_are_valid_and_watch_the_outage():
    from importlib import resources

    from shopfloor.tower import load_rules_file

    path = resources.files("shopfloor.demo").joinpath("data/rules.yaml")
    rules = load_rules_file(Path(str(path)))
    names = {r.name for r in rules.rules}
    assert "primary_processor_failing" in names
