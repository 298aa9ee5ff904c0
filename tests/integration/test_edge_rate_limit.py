"""The real nginx edge limits each client address on checkout before the origin: past the rate and burst it answers
429 in the error envelope with Retry-After, and the origin never sees those requests."""

from __future__ import annotations

import uuid

import httpx
import pytest

from shopfloor.config import Settings
from shopfloor.edge import EdgeLayout, start_all, stop_all, write_configs
from shopfloor.gameday import seed_bench_store
from shopfloor.runtime import ServerProcess, free_port
from tests.support.nginx import require_nginx

pytestmark = pytest.mark.slow

BODY = {"lines": [{"sku": "SKU00001", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


def test_an_address_past_its_checkout_rate_gets_429_in_the_envelope_at_the_edge(tmp_path):
    require_nginx()
    db = f"sqlite:///{tmp_path / 'shop.db'}"
    key = seed_bench_store(db, 5, 30)
    origin = ServerProcess(db, log_path=tmp_path / "origin.log").start()
    ports = [free_port() for _ in range(3)]
    layout = EdgeLayout.from_settings(Settings(edge_dir=tmp_path / "edge", edge_origin_url=origin.url,
                                               edge_node_ports=ports[:2], edge_shield_port=ports[2],
                                               edge_checkout_rate_per_min=6, edge_limit_burst=2))
    write_configs(layout)
    start_all(layout)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        edge = layout.edges[0].url
        answers = [httpx.post(edge + "/v1/checkouts", json=BODY,
                              headers={**headers, "Idempotency-Key": uuid.uuid4().hex}) for _ in range(8)]
        statuses = [r.status_code for r in answers]
        # 1 at the rate plus a burst of 2 pass (201, or 409 if stock ran out); the rest are refused at the edge
        assert sum(s != 429 for s in statuses) <= 3, statuses
        assert statuses.count(429) >= 5, statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert int(refused.headers["Retry-After"]) >= 1
        stop_all(layout)  # flushes the access logs
        reached_origin = [line for line in layout.shield.access_log.read_text().splitlines() if "/v1/checkouts" in line]
        assert len(reached_origin) == sum(s != 429 for s in statuses)
    finally:
        stop_all(layout)
        origin.stop()
