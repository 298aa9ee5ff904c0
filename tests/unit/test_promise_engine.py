"""The promise engine over in-memory stock and statistics."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shopfloor.domain.catalog import Warehouse
from shopfloor.domain.clock import FixedClock
from shopfloor.domain.promise import (
    REASON_BACKLOG,
    REASON_LANE_FALLBACK,
    REASON_STALE_FEED,
    BusinessCalendar,
    DegradationPolicy,
)
from shopfloor.domain.stock import StockLevel
from shopfloor.fulfillment import FulfillmentEvent, FulfillmentStats, OrderTrack, StatsConfig
from shopfloor.fulfillment.stats import to_hours
from shopfloor.promise import InMemoryStats, PromiseConfig, PromiseEngine

MON = datetime(2024, 5, 6, 9, tzinfo=timezone.utc)


class FakeStock:
    def __init__(self, levels, whs):
        self.levels = levels
        self.whs = {w.id: w for w in whs}

    def stock_levels(self, sku):
        return [lv for lv in self.levels if lv.sku == sku]

    def warehouses(self):
        return self.whs


class FakeIncoming:
    def __init__(self, eta):
        self.eta = eta

    def backorder_eta(self, sku, qty, at):
        return self.eta


WHS = [Warehouse("north", "N", "BR", ("0",)), Warehouse("south", "S", "BR", ("9",))]


def history(stats, wh="north", origin="N", dest="BR", days=20, per_day=10, proc_h=20, transit_h=48, end=MON):
    tracks: dict[str, OrderTrack] = {}
    n = 0
    for d in range(days, 0, -1):
        for k in range(per_day):
            start = end - timedelta(days=d, hours=k)
            oid = f"{wh}-{d}-{k}"
            common = dict(order_id=oid, warehouse=wh, country="BR", region=dest, placed_at=start, origin_region=origin)
            for typ, at in (("approved", start), ("handed_to_carrier", start + timedelta(hours=proc_h)),
                            ("delivered", start + timedelta(hours=proc_h + transit_h))):
                if at < end:
                    stats.apply(tracks.setdefault(oid, OrderTrack(oid)),
                                FulfillmentEvent(event_id=f"{oid}{typ}", type=typ, at=at, **common))
            n += 1
    # A fresh heartbeat so the feed is not stale.
    stats.apply(OrderTrack("hb"), FulfillmentEvent(event_id="hb", order_id="hb", type="picked", warehouse=wh,
                                                   at=end - timedelta(minutes=5), country="BR", region=dest))
    return tracks


def engine(levels, stats=None, incoming=None, policy=None):
    stats = stats or FulfillmentStats(StatsConfig(min_lane_weight=5))
    cfg = PromiseConfig(confidence=0.9, limited_threshold=5, calendar=BusinessCalendar(cutoff_hour=14),
                        degradation=policy or DegradationPolicy(stale_feed_after_h=24))
    return PromiseEngine(FakeStock(levels, WHS), InMemoryStats(stats), cfg, incoming=incoming,
                         clock=FixedClock(MON)), stats


def test_in_stock_promise_comes_from_the_warehouse_statistics():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0)])
    history(stats)
    p = eng.promise_for("sku1", 1, "BR", "01000")
    assert p.status == "in_stock" and p.warehouse == "north"
    assert p.ship_by == date(2024, 5, 7)  # 20 h of processing: next working day
    assert date(2024, 5, 8) <= p.deliver_by <= date(2024, 5, 11)
    assert not p.provisional and REASON_STALE_FEED not in p.reasons


def test_few_units_left_is_limited():
    eng, stats = engine([StockLevel("sku1", "north", 6, 0)])
    history(stats)
    assert eng.promise_for("sku1", 2, "BR", "01000").status == "limited"


def test_out_of_stock_with_an_open_purchase_order_is_a_backorder_with_its_date():
    eta = MON + timedelta(days=10)
    eng, stats = engine([StockLevel("sku1", "north", 1, 1)], incoming=FakeIncoming((eta, "north")))
    history(stats)
    p = eng.promise_for("sku1", 1, "BR", "01000")
    assert p.status == "backorder" and p.backorder_expected_at == eta
    assert p.deliver_by > eta.date()


def test_out_of_stock_without_incoming_stock_is_unavailable():
    eng, _ = engine([StockLevel("sku1", "north", 3, 3)])
    p = eng.promise_for("sku1", 1, "BR", "01000")
    assert p.status == "unavailable" and p.deliver_by is None


def test_the_faster_warehouse_wins():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0), StockLevel("sku1", "south", 100, 0)])
    history(stats, wh="north", origin="N", transit_h=24 * 6)
    history(stats, wh="south", origin="S", transit_h=24)
    assert eng.promise_for("sku1", 1, "BR", "01000").warehouse == "south"


def test_a_stale_feed_gets_no_next_day_claim_a_wider_window_and_a_flag():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0)])
    history(stats)
    fresh = eng.promise_for("sku1", 1, "BR", "01000")
    stale = eng.promise_for("sku1", 1, "BR", "01000", at=MON + timedelta(hours=30))
    assert REASON_STALE_FEED in stale.reasons and stale.provisional
    assert (stale.ship_by - (MON + timedelta(hours=30)).date()).days >= 2
    assert (stale.deliver_by - stale.ship_by) > (fresh.deliver_by - fresh.ship_by) or \
        stale.deliver_by - date(2024, 5, 7) > fresh.deliver_by - date(2024, 5, 6)


def test_a_growing_backlog_widens_the_promise():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0)])
    history(stats)
    before = eng.promise_for("sku1", 1, "BR", "01000")
    tracks = {}
    for i in range(300):  # a surge: 300 orders accepted, none handed off yet
        start = MON - timedelta(minutes=i)
        stats.apply(tracks.setdefault(f"s{i}", OrderTrack(f"s{i}")),
                    FulfillmentEvent(event_id=f"s{i}", order_id=f"s{i}", type="approved", at=start,
                                     warehouse="north", country="BR", region="BR", placed_at=start))
    after = eng.promise_for("sku1", 1, "BR", "01000")
    assert REASON_BACKLOG in after.reasons
    assert after.deliver_by > before.deliver_by and after.ship_by > before.ship_by


def _backlog_at(stats, wh, n, region="BR"):
    tracks = {}
    for i in range(n):  # accepted, none handed off yet
        start = MON - timedelta(minutes=i)
        stats.apply(tracks.setdefault(f"{wh}-q{i}", OrderTrack(f"{wh}-q{i}")),
                    FulfillmentEvent(event_id=f"{wh}-q{i}", order_id=f"{wh}-q{i}", type="approved", at=start,
                                     warehouse=wh, country="BR", region=region, placed_at=start))


def test_one_warehouses_backlog_does_not_delay_the_others():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0), StockLevel("sku2", "south", 100, 0)])
    history(stats, wh="north", origin="N")
    history(stats, wh="south", origin="S")
    south_before = eng.promise_for("sku2", 1, "BR", "01000")
    north_before = eng.promise_for("sku1", 1, "BR", "01000")
    _backlog_at(stats, "north", 300)
    south_after = eng.promise_for("sku2", 1, "BR", "01000")
    north_after = eng.promise_for("sku1", 1, "BR", "01000")
    assert north_after.deliver_by > north_before.deliver_by and REASON_BACKLOG in north_after.reasons
    assert south_after.deliver_by == south_before.deliver_by
    assert south_after.reasons == south_before.reasons


def test_a_surge_spread_over_the_network_delays_every_warehouse():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0), StockLevel("sku2", "south", 100, 0)])
    history(stats, wh="north", origin="N")
    history(stats, wh="south", origin="S")
    before = eng.promise_for("sku2", 1, "BR", "01000")
    _backlog_at(stats, "north", 150)
    _backlog_at(stats, "south", 150)
    after = eng.promise_for("sku2", 1, "BR", "01000")
    assert after.deliver_by > before.deliver_by and "volume_surge" in after.reasons


def test_a_thin_lane_falls_back_and_is_flagged():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0)])
    eng.config = PromiseConfig(region_map={"BR": {"0": "BR/0", "6": "BR/6"}},
                               degradation=DegradationPolicy(stale_feed_after_h=24))
    history(stats, dest="BR/0")
    far = eng.promise_for("sku1", 1, "BR", "69000")  # no history to BR/6 at all
    near = eng.promise_for("sku1", 1, "BR", "01000")
    assert REASON_LANE_FALLBACK in far.reasons and far.provisional
    assert REASON_LANE_FALLBACK not in near.reasons


def test_no_history_at_all_gives_a_provisional_default_promise():
    eng, _ = engine([StockLevel("sku1", "north", 100, 0)], policy=DegradationPolicy(stale_feed_after_h=None))
    p = eng.promise_for("sku1", 1, "BR", "01000")
    assert p.provisional and "no_history" in p.reasons and p.deliver_by is not None


def test_batch_promises_match_single_ones():
    eng, stats = engine([StockLevel("a", "north", 100, 0), StockLevel("b", "north", 2, 0)])
    history(stats)
    batch = eng.promises_for([("a", 1, "BR", "01000"), ("b", 1, "BR", "01000"), ("c", 1, "BR", "01000")])
    assert [p.status for p in batch] == ["in_stock", "limited", "unavailable"]
    assert batch[0] == eng.promise_for("a", 1, "BR", "01000")


def test_missed_promises_raise_the_calibrated_quantile_level():
    stats = FulfillmentStats(StatsConfig(aci_gamma=0.01))
    cal = stats.calibration(0.9)
    track = OrderTrack("o", placed_h=0.0, promise_conf=0.9, promise_p50_h=10.0, promise_due_h=20.0,
                       delivered_h=50.0)
    stats.resolve_promise(track, 50.0)
    assert track.outcome == "miss" and cal.level > 0.9
    overdue = OrderTrack("p", placed_h=0.0, promise_conf=0.9, promise_p50_h=10.0, promise_due_h=20.0)
    stats.resolve_promise(overdue, 10.0)
    assert overdue.outcome is None  # not due yet: nothing known
    stats.resolve_promise(overdue, 21.0)
    assert overdue.outcome == "miss"


def _resolved_history(stats, n, miss_every, conf=0.9):
    for i in range(n):
        placed = i * 5.0
        t = OrderTrack(f"r{i}", placed_h=placed, promise_conf=conf, promise_p50_h=100.0,
                       promise_due_h=placed + 150.0, delivered_h=placed + (400.0 if i % miss_every == 0 else 90.0))
        stats.resolve_promise(t, placed + 151.0)


def test_recent_misses_make_the_engine_promise_more_cautiously():
    calm, stormy = FulfillmentStats(), FulfillmentStats()
    _resolved_history(calm, 200, miss_every=10)  # 10% late: on target
    _resolved_history(stormy, 200, miss_every=3)  # 33% late
    at = datetime.fromtimestamp(1200 * 3600, tz=timezone.utc)
    windows = []
    for st in (calm, stormy):
        eng = PromiseEngine(None, InMemoryStats(st), PromiseConfig(
            degradation=DegradationPolicy(stale_feed_after_h=None), coverage_gain=0.5, network_load_signal=False))
        windows.append(eng.delivery_window("w", "N", "BR", at))
    assert windows[1].deliver_by > windows[0].deliver_by
    assert "calibration_adjusted" in windows[1].reasons


def test_a_cancelled_order_takes_back_its_overdue_miss():
    stats = FulfillmentStats()
    track = OrderTrack("c", warehouse="w", placed_h=0.0, promise_conf=0.9, promise_p50_h=100.0, promise_due_h=150.0)
    stats.resolve_promise(track, 151.0)
    cal = stats.calibration(0.9)
    assert track.outcome == "miss" and cal.outcomes.value(151.0, 0) > 0
    stats.apply(track, FulfillmentEvent(event_id="x", order_id="c", type="exception", warehouse="w", country="BR",
                                        at=datetime.fromtimestamp(200 * 3600, tz=timezone.utc)))
    assert track.outcome == "void"
    assert cal.outcomes.value(151.0, 0) == 0 and cal.residuals.weight(151.0) == 0


def test_a_learned_cutoff_moves_late_orders_to_the_next_day():
    stats = FulfillmentStats(StatsConfig(min_lane_weight=5))
    tracks: dict[str, OrderTrack] = {}
    # Orders started before 12:00 UTC leave within 2 h; orders after 12:00 wait until the next morning.
    for d in range(1, 15):
        for hour in (*range(12), 13):
            start = MON - timedelta(days=d) + timedelta(hours=hour - 9)
            handed = start + timedelta(hours=2) if hour < 12 else start.replace(hour=8) + timedelta(days=1)
            oid = f"c{d}-{hour}"
            common = dict(order_id=oid, warehouse="north", country="BR", region="BR", placed_at=start,
                          origin_region="N")
            for typ, at in (("approved", start), ("handed_to_carrier", handed)):
                stats.apply(tracks.setdefault(oid, OrderTrack(oid)),
                            FulfillmentEvent(event_id=f"{oid}{typ}", type=typ, at=at, **common))
    assert stats.get("wh:north").learned_cutoff_hour(to_hours(MON)) == 12.0
    eng = PromiseEngine(None, InMemoryStats(stats), PromiseConfig(
        calendar=BusinessCalendar(cutoff_hour=18), degradation=DegradationPolicy(stale_feed_after_h=None)))
    morning = eng.delivery_window("north", "N", "BR", MON.replace(hour=9))
    afternoon = eng.delivery_window("north", "N", "BR", MON.replace(hour=14))
    assert morning.ship_by == date(2024, 5, 6)
    assert afternoon.ship_by == date(2024, 5, 7) and "after_cutoff" in afternoon.reasons


def test_checkout_can_record_the_promise_it_showed():
    eng, stats = engine([StockLevel("sku1", "north", 100, 0)])
    history(stats)
    p = eng.promise_for("sku1", 1, "BR", "01000")
    eng.record_promise("order-1", p)
    track = eng.stats.tracks["order-1"]
    assert track.promise_conf == 0.9 and track.promise_due_h is not None and track.warehouse == "north"
    eng.record_promise("order-2", eng.promise_for("nothing", 1, "BR", "01000"))  # unavailable: nothing to record
    assert "order-2" not in eng.stats.tracks


def test_an_order_promise_names_the_warehouse_that_ships_the_whole_order():
    # "north" serves the destination and is faster, but only "south" holds both SKUs: the checkout ships the whole
    # order from "south" (no split), so both lines must be promised from there.
    levels = [StockLevel("a", "north", 100, 0), StockLevel("a", "south", 100, 0), StockLevel("b", "south", 100, 0)]
    eng, stats = engine(levels)
    history(stats, wh="north", origin="N", transit_h=24)
    history(stats, wh="south", origin="S", transit_h=24 * 6)
    alone = eng.promise_for("a", 1, "BR", "01000")
    a, b = eng.promise_for_order([("a", 1), ("b", 2)], "BR", "01000")
    assert alone.warehouse == "north"
    assert (a.sku, a.warehouse, b.sku, b.warehouse) == ("a", "south", "b", "south")
    assert a.deliver_by > alone.deliver_by and a.status == "in_stock"


def test_an_order_promise_merges_repeated_skus_and_promises_a_split_line_by_its_slowest_source():
    levels = [StockLevel("a", "north", 6, 0), StockLevel("a", "south", 6, 0)]
    eng, stats = engine(levels)
    history(stats, wh="north", origin="N", transit_h=24)
    history(stats, wh="south", origin="S", transit_h=24 * 6)
    (p,) = eng.promise_for_order([("a", 5), ("a", 5)], "BR", "01000")  # 10 units: 6 + 4
    assert p.qty == 10 and p.warehouse == "south" and p.status == "limited"  # 12 - 10 < 5 left
    assert p.deliver_by > eng.promise_for("a", 5, "BR", "01000").deliver_by  # "north" alone would be faster


def test_an_order_the_stock_cannot_cover_gets_per_line_promises():
    eng, stats = engine([StockLevel("a", "north", 100, 0), StockLevel("b", "north", 1, 1)])
    history(stats)
    a, b = eng.promise_for_order([("a", 1), ("b", 1)], "BR", "01000")
    assert a.status == "in_stock" and a.warehouse == "north"
    assert b.status == "unavailable" and b.deliver_by is None
