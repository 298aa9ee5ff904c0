"""The edge's nginx config, purge decisions, log reading and warm list, without starting nginx."""

from __future__ import annotations

from pathlib import Path

from shopfloor.config import Settings
from shopfloor.edge import (
    EdgeLayout,
    PriceRow,
    PurgeWatcher,
    StockRow,
    band_boundaries,
    cache_stats,
    cached_keys,
    changed_skus,
    page_signatures,
    parse_lines,
    render,
    warm_paths,
)
from shopfloor.edge.purge import PURGER_AGENT


def _layout(tmp_path: Path) -> EdgeLayout:
    return EdgeLayout.from_settings(Settings(edge_dir=tmp_path / "edge", edge_origin_url="http://127.0.0.1:9000",
                                             edge_node_ports=[9101, 9102], edge_shield_port=9190))


def test_edge_nodes_proxy_to_the_shield_and_the_shield_to_the_origin(tmp_path):
    layout = _layout(tmp_path)
    assert [n.name for n in layout.nodes] == ["shield", "edge-a", "edge-b"]
    edge = render(layout, layout.edges[0], "tok")
    shield = render(layout, layout.shield, "tok")
    assert "server 127.0.0.1:9190 max_fails=0;" in edge and "listen 127.0.0.1:9101;" in edge
    assert "server 127.0.0.1:9000 max_fails=0;" in shield and "listen 127.0.0.1:9190;" in shield


def test_config_serves_stale_updates_in_the_background_and_locks_misses(tmp_path):
    conf = render(_layout(tmp_path), _layout(tmp_path).edges[1], "tok")
    assert "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;" in conf
    assert "proxy_cache_background_update on;" in conf and "proxy_cache_lock on;" in conf
    assert "limit_req_zone $binary_remote_addr zone=waiting_room" in conf
    assert "$upstream_cache_status" in conf.split("log_format edge", 1)[1].split(";", 1)[0]
    checkout = conf.split("location / {", 1)[1].split("}", 1)[0]
    assert "proxy_cache off;" in checkout  # checkout, orders and admin pass through uncached
    assert "{{" not in conf and str(tmp_path) in conf  # every placeholder filled, own prefix


def test_only_the_purge_token_bypasses_the_cache(tmp_path):
    conf = render(_layout(tmp_path), _layout(tmp_path).edges[0], "s3cret")
    mapping = conf.split("map $http_x_shopfloor_purge $purge_refresh {", 1)[1].split("}", 1)[0]
    assert "default 0;" in mapping and '"s3cret" 1;' in mapping
    assert "proxy_cache_bypass $purge_refresh;" in conf


def test_the_configs_holding_the_purge_token_are_readable_by_their_owner_only(tmp_path):
    from shopfloor.edge.layout import write_configs

    layout = _layout(tmp_path)
    layout.shield.prefix.mkdir(parents=True)
    layout.shield.conf.write_text("# written world-readable by an older version\n")
    layout.shield.conf.chmod(0o644)
    paths = write_configs(layout)
    token = layout.purge_token()
    assert len(paths) == 3 and all(token in p.read_text() for p in paths)
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o600} == {layout.token_file.stat().st_mode & 0o777}


BOUNDS = band_boundaries(limited_threshold=5, risk_units=20, plenty_units=50)


def _sigs(available: int, price: int = 1000):
    return page_signatures([StockRow("A", "w1", available)], [PriceRow("A", "Mug", price, "USD")], BOUNDS)


def test_a_sale_within_a_band_purges_nothing_but_a_sell_out_and_a_price_change_do():
    assert changed_skus(_sigs(500), _sigs(420)) == set()
    assert changed_skus(_sigs(60), _sigs(0)) == {"A"}  # sold out from the long-TTL band
    assert changed_skus(_sigs(7), _sigs(5)) == {"A"}  # into limited
    assert changed_skus(_sigs(500), _sigs(500, price=900)) == {"A"}


class _Source:
    def __init__(self) -> None:
        self.available = 60

    def stock_rows(self):
        return [StockRow("A", "w1", self.available), StockRow("B", "w1", 1000)]

    def price_rows(self):
        return [PriceRow("A", "Mug", 1000, "USD"), PriceRow("B", "Pan", 3000, "USD")]


class _Target:
    def __init__(self) -> None:
        self.calls: list[set[str]] = []

    def refresh(self, skus):
        self.calls.append(set(skus))
        return {"requests": len(skus), "failed": 0}


def test_watcher_refreshes_a_sold_out_sku_and_once_more_after_the_replica_delay():
    source, target, clock = _Source(), _Target(), [0.0]
    watcher = PurgeWatcher(source, target, BOUNDS, repeat_after_s=1.0, now=lambda: clock[0])
    assert watcher.tick() == set() and target.calls == []  # the first snapshot only records
    source.available = 0
    assert watcher.tick() == {"A"} and target.calls == [{"A"}]
    clock[0] = 0.5
    watcher.tick()
    assert target.calls == [{"A"}]
    clock[0] = 1.1
    watcher.tick()
    assert target.calls == [{"A"}, {"A"}]  # the repeat
    clock[0] = 5.0
    watcher.tick()
    assert len(target.calls) == 2


def test_cache_keys_are_read_from_nginx_cache_files(tmp_path):
    folder = tmp_path / "cache" / "c" / "1a"
    folder.mkdir(parents=True)
    (folder / ("0" * 31 + "c")).write_bytes(b"\x05\x00binary header\nKEY: /v1/products/A?country=US\nHTTP/1.1 200")
    (folder / "tmpfile.0000000001").write_bytes(b"\nKEY: /v1/products/B\n")
    assert cached_keys(tmp_path / "cache") == ["/v1/products/A?country=US"]


LOG = """\
1796295517.757 "GET /v1/products/A?country=US" 200 HIT 0.000 "-" "shopper" purge=0
1796295517.758 "GET /v1/products/A?country=US" 200 MISS 0.010 "127.0.0.1:1" "shopper" purge=0
1796295517.759 "GET /v1/products/A?country=US" 200 STALE 0.000 "-" "shopper" purge=0
1796295517.760 "GET /v1/products/A?country=US" 200 BYPASS 0.010 "127.0.0.1:1" "{agent}" purge=1
1796295517.761 "POST /v1/checkouts" 201 - 0.030 "127.0.0.1:1" "shopper" purge=0
not a log line
""".replace("{agent}", PURGER_AGENT)


def test_hit_ratio_counts_product_pages_served_from_the_node_and_leaves_purges_out():
    stats = cache_stats(parse_lines(LOG.splitlines()))
    assert stats.requests == 3 and stats.from_cache == 2 and stats.stale == 1
    assert round(stats.hit_ratio, 3) == 0.667


def test_warm_list_products_are_requested_for_every_destination():
    entries = [{"kind": "product", "sku": "A", "url": "/v1/products/A?country=US"},
               {"kind": "promise", "sku": "A", "url": "/v1/promise?sku=A&country=US"}]
    assert warm_paths(entries, [("US", "94107"), ("BR", "")]) == [
        "/v1/products/A?country=US&postal_code=94107", "/v1/products/A?country=BR", "/v1/promise?sku=A&country=US"]


def test_the_tower_warm_caches_action_goes_through_the_edge_warmer():
    from datetime import datetime, timezone

    from shopfloor.tower.actions import ActionContext, WarmCachesAction
    from shopfloor.tower.rules import ActionSpec

    class Warmer:
        def __init__(self):
            self.asked = []

        def warm(self, urls=None):
            self.asked.append(urls)
            return {"edge-a /v1/products/A?country=US": 200, "edge-b /v1/products/A?country=US": 200}

    warmer = Warmer()
    action = WarmCachesAction(http=None, warmer=warmer)
    ctx = ActionContext(rule="warm", reason="campaign", values={}, now=datetime(2026, 12, 3, tzinfo=timezone.utc),
                        dry_run=False)
    outcome = action.execute(ActionSpec("warm_caches", {}, 0, 0.0), ctx)
    assert warmer.asked == [None]  # the capacity plan's warm list
    assert outcome.after == {"through": "edge", "requested": 2, "ok": 2}


def test_the_dashboard_cache_panel_shows_hit_ratio_per_node_and_origin_requests_per_minute(tmp_path):
    import time
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from shopfloor.edge import EdgeLogStats
    from shopfloor.tower.dashboard_panels import cache_panel

    layout = _layout(tmp_path)
    now = time.time()
    for node, statuses in (("edge-a", ["HIT", "HIT", "HIT", "MISS"]), ("edge-b", ["STALE"]),
                           ("shield", ["MISS", "MISS"])):
        (tmp_path / "edge" / node).mkdir(parents=True)
        (tmp_path / "edge" / node / "access.log").write_text("".join(
            f'{now - 30:.3f} "GET /v1/products/A?country=US" 200 {st} 0.001 "-" "shopper" purge=0\n'
            for st in statuses) + f'{now - 7200:.3f} "GET /v1/products/A" 200 MISS 0.1 "-" "old" purge=0\n')
    container = SimpleNamespace(services={"edge.log_stats": EdgeLogStats(layout)})
    panel = cache_panel(container, datetime.fromtimestamp(now, timezone.utc))
    assert panel["state"] == "ready"
    assert panel["nodes"]["edge-a"]["hit_ratio"] == 0.75 and panel["nodes"]["edge-b"]["stale"] == 1
    assert panel["nodes"]["shield"]["requests"] == 2  # the line two hours old is outside the window
    assert sum(p["requests"] for p in panel["origin_requests_per_min"]) == 2
    empty = cache_panel(SimpleNamespace(services={"edge.log_stats": EdgeLogStats(_layout(tmp_path / "none"))}),
                        datetime.fromtimestamp(now, timezone.utc))
    assert empty["state"] == "empty" and empty["message"]


def test_a_purge_that_missed_a_dead_node_is_retried_until_it_lands():
    source, clock = _Source(), [0.0]

    class Flaky(_Target):
        def __init__(self):
            super().__init__()
            self.down = True

        def refresh(self, skus):
            self.calls.append(set(skus))
            return {"requests": 2, "failed": 1 if self.down else 0}

    target = Flaky()
    watcher = PurgeWatcher(source, target, BOUNDS, repeat_after_s=1.0, now=lambda: clock[0])
    watcher.tick()
    source.available = 0
    watcher.tick()
    for t in (1.1, 2.2, 3.3):
        clock[0] = t
        watcher.tick()
    assert len(target.calls) == 4  # the purge and three retries while the node was down
    target.down = False
    clock[0] = 4.4
    watcher.tick()
    clock[0] = 9.0
    watcher.tick()
    assert len(target.calls) == 5  # landed: no more retries


def test_edge_nodes_limit_checkout_and_queue_polls_per_address_and_the_shield_does_not(tmp_path):
    layout = EdgeLayout.from_settings(Settings(edge_dir=tmp_path / "edge", edge_origin_url="http://127.0.0.1:9000",
                                               edge_node_ports=[9101], edge_shield_port=9190,
                                               edge_checkout_rate_per_min=90, edge_limit_burst=7))
    edge = render(layout, layout.edges[0], "tok")
    shield = render(layout, layout.shield, "tok")
    checkout = edge.split("location = /v1/checkouts {", 1)[1].split("}", 1)[0]
    queue = edge.split("location ^~ /v1/queue/ {", 1)[1].split("}", 1)[0]
    assert "zone=checkout:10m rate=90r/m" in edge
    assert "limit_req zone=checkout burst=7 nodelay;" in checkout and "error_page 429 = @rate_limited;" in checkout
    assert "limit_req zone=waiting_room burst=7 nodelay;" in queue and "error_page 429 = @rate_limited;" in queue
    assert "limit_req zone=" not in shield  # the shield sees every shopper as an edge node's address
    assert '"code": "too_many_requests"' in edge and 'Retry-After "1"' in edge


def test_the_generated_edge_and_shield_configs_pass_nginx_t(tmp_path):
    from shopfloor.edge.nodes import check_config
    from tests.support.nginx import require_nginx

    require_nginx()  # installs nginx with tools/install-nginx.sh when missing, and fails (never skips) if it cannot
    layout = _layout(tmp_path)
    for node in layout.nodes:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache"):
            (node.prefix / sub).mkdir(parents=True, exist_ok=True)
        node.conf.write_text(render(layout, node, "tok"))
        check_config(node)  # raises with nginx's message when the config is refused
