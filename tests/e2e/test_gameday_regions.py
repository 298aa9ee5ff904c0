"""A short regions game day (what CI runs): shoppers through the nginx edge in front of two regions (Patroni +
etcd, synchronous standby) while a warehouse's feed stops and region A is killed whole with SIGKILL. The failover
is automatic, the edge follows region B by itself, and every check holds. etcd, Patroni and nginx come from the
project's install scripts; without them the test fails, it does not skip."""

from __future__ import annotations

import json

import pytest

from shopfloor.gameday import REGIONS_SCHEDULE, run_regions_gameday
from tests.support.nginx import require_nginx
from tests.support.regions import require_regions_tools

pytestmark = pytest.mark.slow


def test_a_short_regions_game_day_fails_over_to_b_losing_nothing_and_flags_the_delayed_warehouse():
    require_nginx()
    require_regions_tools()
    # Ports: the first free block from SHOPFLOOR_REGIONS_PORT_BASE.
    result = run_regions_gameday(seconds=45, browsers=2, buyers=1, n_skus=20)
    report = result.to_dict()
    assert result.passed, json.dumps(report, default=str)[:4000]
    assert [f["action"] for f in result.faults] == [f.action for f in REGIONS_SCHEDULE]
    assert result.rto_s is not None and result.rto_s <= 30
    assert result.orders_lost_in_failover == 0 and result.orders_acknowledged_before_failover > 0
    assert result.product_page_availability >= 0.999
    assert result.unchanged_promises_during_delay == 0 and result.delay["promises_looked_at"] > 0
    assert result.failover["primary_after"] == "B" and result.failover["region_a_fenced"]
