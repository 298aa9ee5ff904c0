"""A short edge game day (what CI runs): browsing and buying shoppers through two nginx edge nodes and a shield
while an edge node dies, the origin stalls and dies, and a SKU sells out; every check holds and the figures meet
their targets. nginx comes from the project's install script; without it the test fails, it does not skip."""

from __future__ import annotations

import json

import pytest

from shopfloor.gameday import EDGE_SCHEDULE, run_edge_gameday
from tests.support.nginx import require_nginx

pytestmark = pytest.mark.slow


def test_a_short_edge_game_day_keeps_pages_up_and_purges_the_sell_out(tmp_path):
    require_nginx()
    result = run_edge_gameday(seconds=24, browsers=4, buyers=1, n_skus=30, workdir=tmp_path)
    report = result.to_dict()
    assert all(v == 0 for v in report["checks"].values()), json.dumps(report, default=str)[:4000]
    assert [f["action"] for f in result.faults] == [f.action for f in EDGE_SCHEDULE]
    assert result.product_page_availability >= 0.999
    assert result.edge_hit_ratio >= 0.90
    assert result.stale_in_stock_after_sellout_s <= 5.0
    assert result.totals["product_views_failed_over"] > 0  # shoppers of the dead node really moved
    assert result.totals["sellout"]["status"] == 201
    assert result.totals["views_per_checkout"] >= 10
