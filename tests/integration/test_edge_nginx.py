"""The real edge: nginx edge nodes and a shield (from the project's template) in front of the real server process.
Pages are cached and served stale when the origin dies, checkout passes uncached, a sell-out reaches the edge
within seconds through the purger, and a dead edge node leaves the other serving."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from shopfloor.bootstrap import build_container, build_edge_purger
from shopfloor.config import Settings
from shopfloor.edge import EdgeLayout, kill_node, start_all, stop_all, write_configs
from shopfloor.gameday import seed_bench_store
from shopfloor.runtime import ServerProcess, free_port
from tests.support.nginx import require_nginx

pytestmark = pytest.mark.slow

PAGE = "/v1/products/SKU00001?country=US&postal_code=94107"


@pytest.fixture
def edge(tmp_path):
    require_nginx()
    db = f"sqlite:///{tmp_path / 'shop.db'}"
    key = seed_bench_store(db, 5, 30)
    server = ServerProcess(db, log_path=tmp_path / "server.log").start()
    ports = [free_port() for _ in range(3)]
    settings = Settings(database_url=db, edge_dir=tmp_path / "edge", edge_origin_url=server.url,
                        edge_node_ports=ports[:2], edge_shield_port=ports[2], edge_origin_timeout_s=1.0)
    layout = EdgeLayout.from_settings(settings)
    write_configs(layout)
    start_all(layout)
    container = build_container(settings)
    watcher = build_edge_purger(container, layout)
    stop = threading.Event()
    watcher.tick()
    thread = threading.Thread(target=watcher.run, args=(0.2, stop), daemon=True)
    thread.start()
    try:
        yield {"layout": layout, "server": server, "key": key}
    finally:
        stop.set()
        thread.join(timeout=5)
        container.close()
        stop_all(layout)
        server.stop()


def test_a_product_page_is_cached_at_the_edge_and_checkout_is_not(edge):
    url = edge["layout"].edges[0].url
    first = httpx.get(url + PAGE)
    second = httpx.get(url + PAGE)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-edge-cache"] == "MISS" and second.headers["x-edge-cache"] == "HIT"
    assert "stale-if-error=" in second.headers["cache-control"]
    assert httpx.get(url + PAGE, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    checkout = httpx.post(url + "/v1/checkouts", json={}, headers={"Authorization": f"Bearer {edge['key']}"})
    assert checkout.status_code == 422
    assert "x-edge-cache" not in checkout.headers and checkout.headers["cache-control"] == "no-store"


def test_a_sell_out_stops_the_edge_saying_in_stock_within_five_seconds(edge):
    layout, server = edge["layout"], edge["server"]
    page = "/v1/products/HOT?country=US&postal_code=10001"
    for node in layout.edges:
        assert httpx.get(node.url + page).json()["availability"] == "in_stock"
        assert httpx.get(node.url + page).headers["x-edge-cache"] == "HIT"
    sold_at = time.monotonic()
    resp = httpx.put(server.url + "/v1/stock/HOT/us-west-1", json={"on_hand": 0},
                     headers={"Authorization": f"Bearer {edge['key']}"})
    assert resp.status_code == 200
    seen = {node.name: None for node in layout.edges}
    while time.monotonic() - sold_at < 5 and None in seen.values():
        for node in layout.edges:
            if seen[node.name] is None and httpx.get(node.url + page).json()["availability"] != "in_stock":
                seen[node.name] = time.monotonic() - sold_at
        time.sleep(0.05)
    assert None not in seen.values(), f"still in_stock 5 s after the sell-out: {seen}"


def test_pages_come_stale_from_the_edge_while_the_origin_is_down(edge):
    layout, server = edge["layout"], edge["server"]
    url = layout.edges[1].url
    assert httpx.get(url + PAGE).status_code == 200
    server.kill9()
    cached = httpx.get(url + PAGE, timeout=10)
    never_cached = httpx.get(url + "/v1/products/SKU00002?country=US&postal_code=94107", timeout=10)
    checkout = httpx.post(url + "/v1/checkouts", json={}, timeout=10)
    assert cached.status_code == 200 and cached.json()["sku"] == "SKU00001"
    assert never_cached.status_code == 503 and never_cached.json()["error"]["code"] == "origin_unavailable"
    assert checkout.status_code == 503 and checkout.headers["cache-control"] == "no-store"


def test_when_one_edge_node_dies_the_other_keeps_serving(edge):
    layout = edge["layout"]
    a, b = layout.edges
    assert kill_node(a)
    with pytest.raises(httpx.ConnectError):
        httpx.get(a.url + PAGE)
    assert httpx.get(b.url + PAGE).status_code == 200


def test_a_price_change_reaches_the_edge_within_five_seconds(edge):
    layout, server = edge["layout"], edge["server"]
    url = layout.edges[0].url
    assert httpx.get(url + PAGE).json()["price"] == 501
    assert httpx.get(url + PAGE).headers["x-edge-cache"] == "HIT"  # cached for minutes (plenty of stock)
    changed_at = time.monotonic()
    resp = httpx.put(server.url + "/v1/skus/SKU00001", headers={"Authorization": f"Bearer {edge['key']}"},
                     json={"name": "Bench item 1", "category": "cat1", "price": 450, "currency": "USD"})
    assert resp.status_code == 200
    while time.monotonic() - changed_at < 5:
        if httpx.get(url + PAGE).json()["price"] == 450:
            break
        time.sleep(0.05)
    assert httpx.get(url + PAGE).json()["price"] == 450, "the old price is still served 5 s after the change"
