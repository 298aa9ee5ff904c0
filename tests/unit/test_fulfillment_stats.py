"""Recency-weighted sketches and the fulfillment statistics built from events."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from shopfloor.fulfillment import DecayingHistogram, FulfillmentEvent, FulfillmentStats, OrderTrack, StatsConfig
from shopfloor.fulfillment.stats import blended_quantile, lane_keys, to_hours

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def ev(eid, oid, typ, at, wh="W1", region="SP/01", placed=None, origin="SP", carrier=None):
    return FulfillmentEvent(event_id=eid, order_id=oid, type=typ, at=at, warehouse=wh, region=region, country="BR",
                            placed_at=placed, origin_region=origin, carrier=carrier)


def journey(oid, start, proc_h, transit_h, **kw):
    return [
        ev(f"{oid}a", oid, "approved", start, placed=start, **kw),
        ev(f"{oid}h", oid, "handed_to_carrier", start + timedelta(hours=proc_h), placed=start, **kw),
        ev(f"{oid}d", oid, "delivered", start + timedelta(hours=proc_h + transit_h), placed=start, **kw),
    ]


def feed(stats, events):
    tracks: dict[str, OrderTrack] = {}
    for e in events:
        stats.apply(tracks.setdefault(e.order_id, OrderTrack(e.order_id)), e)
    return tracks


def test_sketch_quantiles_match_the_sample_within_a_bin():
    rng = random.Random(1)
    values = [rng.uniform(24, 240) for _ in range(5000)]
    h = DecayingHistogram(half_life=1e9)
    for v in values:
        h.add(v, 0.0)
    values.sort()
    for q in (0.1, 0.5, 0.9):
        assert h.quantile(q) == pytest.approx(values[int(q * len(values))], abs=12.0)


def test_recency_weighting_follows_a_shift_in_the_data():
    h = DecayingHistogram(half_life=24.0 * 7)
    for day in range(60):
        h.add(48.0 if day < 30 else 120.0, day * 24.0)
    # 30 days after the shift (4+ half-lives) the median is the new regime's.
    assert h.quantile(0.5) > 100
    flat = DecayingHistogram(half_life=1e9)
    for day in range(60):
        flat.add(48.0 if day < 30 else 120.0, day * 24.0)
    assert flat.quantile(0.25) < 60


def test_sketch_updates_do_not_depend_on_arrival_order():
    samples = [(random.Random(i).uniform(1, 300), i * 5.0) for i in range(300)]
    a, b = DecayingHistogram(240.0), DecayingHistogram(240.0)
    for v, t in samples:
        a.add(v, t)
    for v, t in reversed(samples):
        b.add(v, t)
    assert a.quantile(0.9) == pytest.approx(b.quantile(0.9))
    assert a.weight(1500.0) == pytest.approx(b.weight(1500.0))


def test_sketch_survives_a_round_trip_through_json():
    h = DecayingHistogram(100.0)
    for i in range(50):
        h.add(i * 3.0, float(i))
    again = DecayingHistogram.from_dict(h.to_dict())
    assert again.quantile(0.7) == pytest.approx(h.quantile(0.7))


def test_processing_and_transit_times_are_learned_from_event_pairs():
    stats = FulfillmentStats(StatsConfig(min_lane_weight=3))
    events = []
    for i in range(20):
        events += journey(f"o{i}", T0 + timedelta(hours=6 * i), proc_h=30, transit_h=72)
    feed(stats, events)
    at = to_hours(T0 + timedelta(days=6))
    chain, fell_back = stats.processing_chain("W1", "SP", at)
    assert not fell_back and blended_quantile(chain, 0.5, 5) == pytest.approx(30, abs=2)
    lanes, lane_fb = stats.lane_chain("SP", "SP/01", None, at)
    assert not lane_fb and blended_quantile(lanes, 0.5, 3) == pytest.approx(72, abs=7)


def test_events_arriving_out_of_order_give_the_same_statistics():
    events = []
    for i in range(15):
        events += journey(f"o{i}", T0 + timedelta(hours=5 * i), proc_h=10 + i, transit_h=50 + 2 * i)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    a, b = FulfillmentStats(), FulfillmentStats()
    feed(a, events)
    feed(b, shuffled)
    at = to_hours(T0 + timedelta(days=10))
    for key in ("wh:W1", "lane:SP|SP/01", "proc:*"):
        ha = a.get(key).processing if key.startswith("wh") else a.get(key).hist
        hb = b.get(key).processing if key.startswith("wh") else b.get(key).hist
        assert ha.quantile(0.8) == pytest.approx(hb.quantile(0.8))
        assert ha.weight(at) == pytest.approx(hb.weight(at))
    assert a.get("wh:W1").backlog == b.get("wh:W1").backlog == 0


def test_backlog_counts_accepted_orders_not_yet_handed_off():
    stats = FulfillmentStats()
    tracks = feed(stats, [ev(f"a{i}", f"o{i}", "approved", T0, placed=T0) for i in range(5)])
    assert stats.get("wh:W1").backlog == 5
    stats.apply(tracks["o0"], ev("h0", "o0", "handed_to_carrier", T0 + timedelta(hours=3)))
    stats.apply(tracks["o1"], ev("x1", "o1", "exception", T0 + timedelta(hours=3)))
    assert stats.get("wh:W1").backlog == 3
    assert stats.get("wh:W1").in_transit == 1
    assert stats.get("wh:W1").last_event_h == to_hours(T0 + timedelta(hours=3))


def test_a_thin_lane_falls_back_to_a_broader_region_and_says_so():
    stats = FulfillmentStats(StatsConfig(min_lane_weight=5))
    events = []
    for i in range(30):
        events += journey(f"s{i}", T0 + timedelta(hours=3 * i), 20, 48, region="SP/01")
    events += journey("thin", T0, 20, 200, region="RJ/20")
    feed(stats, events)
    at = to_hours(T0 + timedelta(days=5))
    chain, fell_back = stats.lane_chain("SP", "RJ/20", None, at)
    assert fell_back
    # The single slow sample is shrunk towards the origin's other lanes.
    assert blended_quantile(chain, 0.5, 5) < 120
    _, ok = stats.lane_chain("SP", "SP/01", None, at)
    assert not ok


def test_lane_keys_go_from_carrier_lane_to_network():
    assert lane_keys("SP", "RJ/20", "correios") == [
        "lane:SP|RJ/20|correios", "lane:SP|RJ/20", "lane:SP|RJ", "lane:*|RJ/20", "lane:*|RJ", "lane:SP|*",
        "lane:*|*",
    ]


def test_work_clock_skips_most_of_the_weekend_and_round_trips():
    from datetime import datetime, timezone
    from shopfloor.fulfillment.stats import WorkClock, from_hours

    clock = WorkClock(0.2)
    fri = to_hours(datetime(2017, 7, 7, 20, tzinfo=timezone.utc))
    # 4 working hours to Friday midnight, then 48 weekend hours count 9.6: 10 h from Friday 20:00 is Sunday 06:00
    assert from_hours(clock.forward(fri, 10.0)) == datetime(2017, 7, 9, 6, tzinfo=timezone.utc)
    mon = to_hours(datetime(2017, 7, 10, 8, tzinfo=timezone.utc))
    assert clock.span(mon, mon + 24) == 24.0
    for t in (fri, mon, fri + 30.5, mon + 1000.25):
        assert abs(clock.back(clock.at(t)) - t) < 1e-9
    assert WorkClock(1.0).span(fri, fri + 50) == 50.0


def test_a_thursday_order_gets_a_later_promise_than_a_monday_order_on_a_working_day_clock():
    from datetime import datetime, timezone
    from shopfloor.fulfillment.stats import FulfillmentEvent
    from shopfloor.promise.engine import InMemoryStats, PromiseEngine

    stats = FulfillmentStats(StatsConfig(min_lane_weight=3, weekend_weight=0.1))
    start = datetime(2017, 3, 6, 10, tzinfo=timezone.utc)  # a Monday
    for i in range(40):
        placed = start + timedelta(days=i)
        track = OrderTrack(f"o{i}")
        for kind, at in (("handed_to_carrier", placed + timedelta(days=1)), ("delivered", placed + timedelta(days=3))):
            stats.apply(track, FulfillmentEvent(f"o{i}{kind}", f"o{i}", kind, at, "w1", region="RJ",
                                                placed_at=placed, origin_region="SP"))
    engine = PromiseEngine(None, InMemoryStats(stats))
    mon = datetime(2017, 4, 17, 10, tzinfo=timezone.utc)
    thu = datetime(2017, 4, 20, 10, tzinfo=timezone.utc)
    d_mon = (engine.delivery_window("w1", "SP", "RJ", mon).eta_p50 - mon.date()).days
    d_thu = (engine.delivery_window("w1", "SP", "RJ", thu).eta_p50 - thu.date()).days
    assert d_thu > d_mon


def test_kaplan_meier_counts_orders_still_in_flight_as_evidence_of_a_longer_tail():
    from shopfloor.fulfillment.stats import WorkClock
    from shopfloor.fulfillment.survival import score_curve

    clock = WorkClock(1.0)
    now = 24.0 * 1000
    # 20 delivered orders with scores 0.1 .. 2.0 (basis 240 h, deliveries at day starts), no censoring:
    delivered = [(now - 24.0 * 30, 240.0, now - 24.0 * 30 + 24.0 * k) for k in range(1, 21)]
    plain = score_curve(delivered, now, clock, half_life_h=1e9)
    assert plain.quantile(0.5) == pytest.approx(1.0) and plain.quantile(1.0) == pytest.approx(2.0)
    assert plain.in_flight == 0
    # Add 20 recent orders placed 5 days ago and not delivered yet (each will score at least 0.5): only deliveries
    # count as events, so the median moves up; ignoring them (or waiting for their deadlines) would not show it.
    waiting = [(now - 24.0 * 5, 240.0, None)] * 20
    both = score_curve(delivered + waiting, now, clock, half_life_h=1e9)
    assert both.in_flight == pytest.approx(20)
    assert both.quantile(0.5) > plain.quantile(0.5)
    # A delivery after ``now`` is not known yet: it is censored, never an event.
    future = score_curve([(now - 48.0, 240.0, now + 5.0)], now, clock, half_life_h=1e9)
    assert future.quantile(0.1) is None
