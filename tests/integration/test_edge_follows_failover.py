"""The real nginx edge in front of two origins, region A first and region B as its backup: while A answers, B gets
nothing; once A dies, product pages and checkouts go to B with no manual step (no config change, no reload)."""

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


def _served_by(layout: EdgeLayout) -> list[str]:
    return [line.split('"')[3] for line in layout.shield.access_log.read_text().splitlines() if line.strip()]


def test_the_edge_sends_everything_to_region_a_and_follows_region_b_once_a_dies(tmp_path):
    require_nginx()
    db = f"sqlite:///{tmp_path / 'shop.db'}"
    key = seed_bench_store(db, 5, 30)
    a = ServerProcess(db, log_path=tmp_path / "a.log").start()
    b = ServerProcess(db, log_path=tmp_path / "b.log").start()
    ports = [free_port() for _ in range(3)]
    layout = EdgeLayout.from_settings(Settings(edge_dir=tmp_path / "edge", edge_origin_url=a.url,
                                               edge_origin_backup_urls=[b.url], edge_node_ports=ports[:2],
                                               edge_shield_port=ports[2], edge_origin_timeout_s=1.0))
    write_configs(layout)
    start_all(layout)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        edge = layout.edges[0].url
        for i in range(3):  # distinct pages: each one a miss at the shield
            assert httpx.get(f"{edge}/v1/products/SKU0000{i}?country=US&postal_code=94107").status_code == 200
        before = httpx.post(edge + "/v1/checkouts", json=BODY, headers={**headers, "Idempotency-Key": "k1"})
        assert before.status_code == 201, before.text
        a.kill9()
        page = httpx.get(f"{edge}/v1/products/SKU00004?country=US&postal_code=94107")  # never cached: from B
        assert page.status_code == 200 and "availability" in page.json()
        after = httpx.post(edge + "/v1/checkouts", json=BODY,
                           headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        assert after.status_code == 201, after.text
        stop_all(layout)  # flushes the access log
        upstreams = _served_by(layout)
        a_addr, b_addr = a.url.removeprefix("http://"), b.url.removeprefix("http://")
        assert upstreams[:4] == [a_addr] * 4
        assert upstreams[-1] == b_addr and upstreams[-2].endswith(b_addr)  # "A, B" when A refused first
    finally:
        stop_all(layout)
        a.stop()
        b.stop()
