"""The game day's warehouse_delay fault: a delayed warehouse's fulfillment events are held back (and arrive late
when it comes back), its promises turn provisional and wider once its feed passes the stale threshold, even
within the minute the engine caches windows for, and the report counts promises that went out unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shopfloor.domain.promise import REASON_STALE_FEED, BusinessCalendar, DegradationPolicy
from shopfloor.domain.stock import StockLevel
from shopfloor.fulfillment import FulfillmentEvent, FulfillmentStats, OrderTrack, StatsConfig
from shopfloor.gameday import (
    REGIONS_ACTIONS,
    REGIONS_SCHEDULE,
    PromiseSeen,
    WarehouseFeed,
    parse_schedule,
    unchanged_promises,
)
from shopfloor.promise import InMemoryStats, PromiseConfig, PromiseEngine
from tests.unit.test_promise_engine import MON, WHS, FakeStock, history

NOW = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)


def _feed() -> WarehouseFeed:
    return WarehouseFeed({"us-west-1": "us-west", "us-east-1": "us-east"}, [("US", "94107"), ("US", "10001")])


def test_a_delayed_warehouse_sends_nothing_until_it_comes_back_then_its_events_arrive_late():
    feed = _feed()
    assert {e["warehouse"] for e in feed.tick(NOW)} == {"us-west-1", "us-east-1"}
    feed.delay("us-east-1", NOW)
    held_ticks = [feed.tick(NOW + timedelta(seconds=s)) for s in (1, 2, 3)]
    assert all({e["warehouse"] for e in batch} == {"us-west-1"} for batch in held_ticks)
    late = feed.release("us-east-1")
    assert len(late) == 3 * 4 and {e["warehouse"] for e in late} == {"us-east-1"}
    # They keep the times they happened at: the newest is the last held tick's delivery, now in the past.
    assert max(datetime.fromisoformat(e["at"]) for e in late) == NOW + timedelta(seconds=3)
    assert {e["warehouse"] for e in feed.tick(NOW + timedelta(seconds=4))} == {"us-west-1", "us-east-1"}


def test_only_a_known_warehouse_can_be_delayed():
    with pytest.raises(ValueError, match="warehouse_delay.target"):
        _feed().delay("mars-1", NOW)


def test_history_covers_every_warehouse_and_destination_with_finished_orders():
    events = _feed().history(NOW, orders_per_lane=3)
    lanes = {(e["warehouse"], e["postal_code"]) for e in events}
    assert len(lanes) == 4 and len(events) == 4 * 3 * 4
    assert all(datetime.fromisoformat(e["at"]) <= NOW for e in events)


def _engine(after_s: float, cache_windows: bool):
    stats = FulfillmentStats(StatsConfig(min_lane_weight=5))
    history(stats)
    # The warehouse's last word: 5 s after 09:00:00.
    stats.apply(OrderTrack("last"), FulfillmentEvent(event_id="last", order_id="last", type="picked",
                                                      warehouse="north", at=MON + timedelta(seconds=5),
                                                      country="BR", region="BR"))
    cfg = PromiseConfig(confidence=0.9, limited_threshold=5, calendar=BusinessCalendar(cutoff_hour=14),
                        degradation=DegradationPolicy(stale_feed_after_h=after_s / 3600), cache_windows=cache_windows)
    return PromiseEngine(FakeStock([StockLevel("sku1", "north", 100, 0)], WHS), InMemoryStats(stats), cfg)


@pytest.mark.parametrize("cache_windows", [False, True])
def test_once_the_feed_is_past_the_threshold_the_promise_widens_and_says_provisional_within_the_minute(cache_windows):
    eng = _engine(after_s=10, cache_windows=cache_windows)
    fresh = eng.promise_for("sku1", 1, "BR", "01000", at=MON + timedelta(seconds=10))
    late = eng.promise_for("sku1", 1, "BR", "01000", at=MON + timedelta(seconds=40))  # same minute, feed 35 s old
    assert not fresh.provisional and REASON_STALE_FEED not in fresh.reasons
    assert late.provisional and REASON_STALE_FEED in late.reasons
    assert late.deliver_by > fresh.deliver_by


def _seen(at_s, warehouse="us-east-1", deliver_by="2026-12-08", provisional=False, dest="94107"):
    return PromiseSeen(at_s, dest, warehouse, deliver_by, provisional)


def test_unchanged_promises_counts_only_the_delayed_warehouses_promises_that_neither_widened_nor_flagged():
    seen = [_seen(1.0), _seen(2.0, dest="10001", deliver_by="2026-12-07"),
            _seen(20.0, provisional=True, deliver_by="2026-12-10"),  # widened and flagged: fine
            _seen(21.0, deliver_by="2026-12-10"),                     # widened, not flagged: fine
            _seen(22.0),                                               # unchanged
            _seen(23.0, dest="10001", deliver_by="2026-12-07"),       # unchanged
            _seen(24.0, warehouse="us-west-1"),                        # another warehouse: not counted
            _seen(60.0)]                                               # after the warehouse came back
    out = unchanged_promises(seen, "us-east-1", delayed_from_s=10.0, known_from_s=15.0, until_s=50.0)
    assert {k: out[k] for k in ("unchanged", "during", "baseline_destinations", "baseline_provisional")} == {
        "unchanged": 2, "during": 4, "baseline_destinations": 2, "baseline_provisional": 0}
    assert out["unchanged_at_s"] == [22.0, 23.0]
    assert out["timeline"] == [[1.0, False], [20.0, True], [21.0, False]]


def test_the_regions_schedule_delays_a_warehouse_and_kills_region_a():
    assert [f.action for f in REGIONS_SCHEDULE] == ["warehouse_delay", "region_down", "warehouse_back"]
    faults = parse_schedule([{"at": 0.2, "action": "warehouse_delay", "target": "us-west-1"},
                             {"at": 0.5, "action": "region_down"}], REGIONS_ACTIONS)
    assert [(f.action, f.target) for f in faults] == [("warehouse_delay", "us-west-1"), ("region_down", "A")]


@pytest.mark.parametrize("data, message", [
    ([{"at": 0.2, "action": "warehouse_delay"}], r"faults\[0\].target: the warehouse"),
    ([{"at": 0.2, "action": "region_down", "target": "B"}], r"faults\[0\].target: the region: 'A'"),
    ([{"at": 0.2, "action": "kill_server"}], r"faults\[0\].action: one of region_down"),
])
def test_a_bad_regions_schedule_is_refused_naming_the_fault_and_field(data, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(data, REGIONS_ACTIONS)


def test_the_checkout_schedule_does_not_take_regions_faults():
    with pytest.raises(ValueError, match="action: one of processor"):
        parse_schedule([{"at": 0.2, "action": "region_down"}])


def test_the_example_regions_schedule_file_is_the_default_regions_schedule():
    from pathlib import Path

    from shopfloor.gameday import load_schedule

    path = Path(__file__).resolve().parents[2] / "examples" / "gameday-regions.yaml"
    faults = load_schedule(path, REGIONS_ACTIONS)
    assert [(f.at, f.action, f.target) for f in faults] == [(f.at, f.action, f.target) for f in REGIONS_SCHEDULE]


def test_the_regions_game_day_refuses_a_schedule_with_a_checkout_fault_before_starting_anything(tmp_path):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {at: 0.2, action: kill_server}\n")
    result = CliRunner().invoke(app, ["gameday", "--scenario", "regions", "--schedule", str(bad)])
    assert result.exit_code != 0
    assert "--schedule" in result.output and "faults[0].action" in result.output
