"""A control-tower 'degrade promises' action really widens the promises the API and checkout give."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import seed


def test_degraded_warehouse_promises_later_and_says_why(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 100}, {("A1", "w1"): 50})
    params = {"sku": "A1", "qty": 1, "country": "US", "postal_code": "94107"}
    with TestClient(create_app(container)) as client:
        before = client.get("/v1/promise", params=params).json()
        assert before["deliver_by"] and before["warehouse"] == "w1"
        now = container.clock.now()
        container.services["tower.repository"].degrade_promises("w1", "carrier strike", 3, now + timedelta(hours=4),
                                                                now)
        container.services["promise"].engine._cached = (-1e9, {})  # skip the 5 s cache in a test
        after = client.get("/v1/promise", params=params).json()
    assert after["deliver_by"] > before["deliver_by"]
    assert after["provisional"] is True
    assert any("carrier strike" in r for r in after["reasons"])
