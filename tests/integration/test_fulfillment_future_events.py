"""A fulfillment event dated far in the future is refused naming it, and cannot break later promises."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.fulfillment.sketch import DecayingHistogram
from tests.support.store import new_key, seed


def test_an_event_dated_in_the_future_is_a_422_naming_it(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5})
    _, ingest = new_key(container.engine, "ingest")
    now = datetime.now(timezone.utc)
    good = {"event_id": "e1", "order_id": "o1", "type": "picked", "at": now.isoformat(), "warehouse": "w1",
            "country": "US", "postal_code": "94107"}
    future = {**good, "event_id": "e2", "at": "9999-12-31T00:00:00Z"}
    with TestClient(create_app(container)) as client:
        headers = {"Authorization": f"Bearer {ingest}"}
        r = client.post("/v1/fulfillment/events", json={"events": [good, future]}, headers=headers)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["details"][0]["field"] == "events.1.at" and error["details"][0]["event_id"] == "e2"
        assert client.post("/v1/fulfillment/events", json={"events": [good]}, headers=headers).status_code == 200
        r = client.get("/v1/promise", params={"sku": "A1", "country": "US", "postal_code": "94107"})
        assert r.status_code == 200, r.text


def test_a_sketch_asked_about_a_time_long_before_its_newest_sample_stays_finite():
    sketch = DecayingHistogram(half_life=24.0)
    sketch.add(5.0, t=70_000_000.0)  # a sample thousands of years ahead of the question
    weight = sketch.weight(at=500_000.0)  # no OverflowError
    assert math.isfinite(weight) and weight > 0


def test_new_fulfillment_events_are_counted_by_type_on_metrics_and_a_replay_adds_nothing(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5})
    _, ingest = new_key(container.engine, "ingest")
    now = datetime.now(timezone.utc)
    base = {"order_id": "o1", "warehouse": "w1", "country": "US", "postal_code": "94107"}
    events = [{**base, "event_id": f"e{i}", "type": kind, "at": (now - timedelta(hours=3 - i)).isoformat()}
              for i, kind in enumerate(["picked", "packed", "handed_to_carrier"])]
    events.append({**base, "event_id": "o2-picked", "order_id": "o2", "type": "picked", "at": now.isoformat()})

    def counted(client) -> dict[str, float]:
        out = {}
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("shopfloor_fulfillment_events_total{"):
                kind = line.split('type="', 1)[1].split('"', 1)[0]
                out[kind] = float(line.rsplit(" ", 1)[1])
        return out

    with TestClient(create_app(container)) as client:
        headers = {"Authorization": f"Bearer {ingest}"}
        assert client.post("/v1/fulfillment/events", json={"events": events}, headers=headers).json() == {
            "accepted": 4, "duplicates": 0}
        assert counted(client) == {"picked": 2.0, "packed": 1.0, "handed_to_carrier": 1.0}
        assert client.post("/v1/fulfillment/events", json={"events": events}, headers=headers).json() == {
            "accepted": 0, "duplicates": 4}
        assert counted(client) == {"picked": 2.0, "packed": 1.0, "handed_to_carrier": 1.0}
