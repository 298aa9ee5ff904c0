"""The edge in front of two regions: the shield's origin upstream lists region A and region B (as a backup), and a
refused connection or a timeout moves a request to B, so the edge follows a failover with no manual step."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor.cli.edge_cmd import regions_origin
from shopfloor.config import Settings
from shopfloor.edge import EdgeLayout, render
from shopfloor.regions import RegionsLayout


def _settings(tmp_path: Path, **extra) -> Settings:
    return Settings(edge_dir=tmp_path / "edge", edge_origin_url="http://127.0.0.1:9000", edge_node_ports=[9101, 9102],
                    edge_shield_port=9190, **extra)


def test_the_shield_lists_region_a_first_and_region_b_as_its_backup(tmp_path):
    layout = EdgeLayout.from_settings(_settings(tmp_path, edge_origin_backup_urls=["http://127.0.0.1:9001"]))
    shield = render(layout, layout.shield, "tok")
    a = shield.index("server 127.0.0.1:9000 max_fails=1 fail_timeout=3s;")
    b = shield.index("server 127.0.0.1:9001 max_fails=1 fail_timeout=3s backup;")
    assert a < b
    # product pages, the checkout, the queue status and the pass-through
    assert shield.count("proxy_next_upstream error timeout;") == 4
    edge = render(layout, layout.edges[0], "tok")  # edge nodes still talk to the shield only
    assert "server 127.0.0.1:9190 max_fails=0;" in edge and "9001" not in edge
    assert edge.count("proxy_next_upstream off;") == 4


def test_one_origin_keeps_the_single_server_upstream(tmp_path):
    layout = EdgeLayout.from_settings(_settings(tmp_path))
    shield = render(layout, layout.shield, "tok")
    assert "server 127.0.0.1:9000 max_fails=0;" in shield and "backup" not in shield
    assert shield.count("proxy_next_upstream off;") == 4


def test_the_regions_option_points_the_edge_at_both_regions_apps(tmp_path):
    settings = regions_origin(_settings(tmp_path, regions_port_base=20600, regions_dir=tmp_path / "regions"))
    regions = RegionsLayout.from_settings(settings)
    layout = EdgeLayout.from_settings(settings)
    assert layout.origins == (regions.a.app_url, regions.b.app_url)
    shield = render(layout, layout.shield, "tok")
    assert f"server 127.0.0.1:{regions.b.app_port} max_fails=1 fail_timeout=3s backup;" in shield


@pytest.mark.parametrize("backups, field", [(["ftp://x:1"], "SHOPFLOOR_EDGE_ORIGIN_BACKUP_URLS"),
                                            (["http://127.0.0.1:9000"], "SHOPFLOOR_EDGE_ORIGIN_BACKUP_URLS")])
def test_a_bad_backup_origin_is_refused_naming_the_setting(tmp_path, backups, field):
    with pytest.raises(ValueError, match=field):
        EdgeLayout.from_settings(_settings(tmp_path, edge_origin_backup_urls=backups))
