"""The shipped restock policy: the engine (censoring, fill control), the agent protocol, and the backtest that
drives it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from shopfloor.planning.restock import CatalogEntry, PolicyBook, StockPosition, order_shortfall
from shopfloor.planning.restock_agent import MAX_HISTORY_DAYS, ReplenishmentAgent
from shopfloor.planning.restock_backtest import (
    DemandPanel,
    bisect_baseline_z,
    neutral_start,
    run_restock_backtest,
    simulate_agent,
)
from shopfloor.planning.restock_engine import (
    EngineTuning,
    RestockEngine,
    censored_demand,
    order_levels,
    replay_history,
)
from shopfloor.planning.restock_service import RestockPlanner
from tests.support.hostile import places, variants

DAY0 = date(2024, 1, 1)


def _panel(seed: int, n: int = 20, days: int = 400, shift: bool = True) -> DemandPanel:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 3.0, size=(n, 1)) * (1 + 0.3 * np.sin(np.arange(days) / 20))
    if shift:
        lam[: n // 2, days // 2:] *= 1.8  # half the SKUs get busier half way through
    wd = np.arange(days) % 7
    lam = lam * np.where(wd == 5, 1.5, 1.0)
    demand = rng.poisson(lam).astype(np.int64)
    return DemandPanel([f"s{i}" for i in range(n)], pd.date_range(DAY0, periods=days), demand)


def _agent_run(panel: DemandPanel, target: float, *, start: int, warmup: int = 28):
    stock = neutral_start(panel.demand[:, :start], 7, 1, target)
    agent = ReplenishmentAgent(fill_rate=target, lead_time=7)
    return simulate_agent(panel, agent.handle, lead_time=7, start=start, warmup=warmup, on_hand=stock)


# --- censoring ------------------------------------------------------------------------------------------------
def test_a_sold_out_day_counts_as_at_least_its_sales_and_more_when_stock_ran_out_early():
    est = censored_demand(np.array([0.0, 3.0, 3.0]), np.array([2.0, 2.0, 10.0]), np.array([2.0, 2.0, 2.0]))
    assert est[0] == pytest.approx(2.0)  # sold nothing (no stock all day): the day's mean
    assert est[1] > 3.0  # sold all 3: demand was 3 or more
    assert est[2] > est[1]  # and more so when 10 were expected


def test_stockouts_are_not_taken_at_face_value():
    """Two engines see the same sales; one is told the SKU sold out on those days, and learns a higher level."""
    rng = np.random.default_rng(2)
    plain, censored = (RestockEngine(lead_time=7, fill_rate=0.95) for _ in range(2))
    for e in (plain, censored):
        e.ensure(["a"])
    for t in range(120):
        sales = np.array([float(rng.poisson(6))])
        plain.observe(t % 7, sales)
        censored.observe(t % 7, sales)
    for t in range(120, 150):  # a stretch where only 2 a day were on the shelf, all sold
        plain.observe(t % 7, np.array([2.0]), np.array([False]))
        censored.observe(t % 7, np.array([2.0]), np.array([True]))
    assert censored.level[0] > 1.5 * plain.level[0]
    assert censored.levels()["order_up_to"][0] > plain.levels()["order_up_to"][0]


def test_lost_demand_never_reaches_the_agent():
    """Demand on days with nothing on the shelf is invisible to a store: changing it changes no order."""
    panel = _panel(3, n=12, days=300)
    stock = neutral_start(panel.demand[:, :200], 7, 1, 0.95)
    seen: list[dict] = []

    def recording(agent):
        def step(line):
            seen.append(line)
            return agent.handle(line)
        return step

    base = simulate_agent(panel, recording(ReplenishmentAgent(fill_rate=0.95)), lead_time=7, start=200, warmup=0,
                          on_hand=np.zeros_like(stock))
    assert all(set(line) <= {"date", "sales", "on_hand", "on_order", "catalog", "history"} for line in seen)
    # re-run with more demand exactly where the shelf was empty at the start of the day: same sales, same orders
    lost_days = np.zeros_like(panel.demand, dtype=bool)
    on_hand = np.zeros(12, dtype=np.int64)
    arrivals = np.zeros((12, 320), dtype=np.int64)
    for t in range(200, 300):
        on_hand += arrivals[:, t]
        lost_days[:, t] = on_hand == 0
        on_hand -= np.minimum(on_hand, panel.demand[:, t])
        arrivals[:, t + 8] += base.orders[:, t]
    assert lost_days.any()
    more = panel.demand + np.where(lost_days, 5, 0)
    other = simulate_agent(DemandPanel(panel.ids, panel.dates, more), ReplenishmentAgent(fill_rate=0.95).handle,
                           lead_time=7, start=200, warmup=0, on_hand=np.zeros_like(stock))
    assert np.array_equal(base.orders, other.orders)
    assert other.demand.sum() > base.demand.sum()  # the change was real


# --- fill control ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [0.90, 0.95, 0.98])
def test_agent_tracks_its_fill_target_within_one_and_a_half_points_after_a_28_day_warmup(target):
    panel = _panel(5, n=40, days=400)
    res = _agent_run(panel, target, start=400 - 182 - 28)
    assert abs(res.fill_rate - target) <= 0.015, res.fill_rate


def test_a_higher_fill_target_holds_more_stock():
    panel = _panel(6, n=30, days=360)
    low, high = (_agent_run(panel, t, start=150) for t in (0.90, 0.98))
    assert high.avg_on_hand > low.avg_on_hand and high.fill_rate > low.fill_rate


def test_agent_decisions_never_depend_on_later_demand():
    panel = _panel(7, n=10, days=300)
    altered = panel.demand.copy()
    altered[:, 251:] = np.random.default_rng(99).poisson(30, size=altered[:, 251:].shape)
    a = _agent_run(panel, 0.95, start=200)
    b = _agent_run(DemandPanel(panel.ids, panel.dates, altered), 0.95, start=200)
    assert np.array_equal(a.orders[:, :251], b.orders[:, :251])
    assert not np.array_equal(a.orders, b.orders)


# --- protocol -------------------------------------------------------------------------------------------------
def _day(d: date, **kw) -> str:
    return json.dumps({"date": d.isoformat(), **kw})


def test_agent_answers_each_line_and_reports_bad_fields_without_losing_state():
    agent = ReplenishmentAgent(fill_rate=0.95, lead_time=2)
    history = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "A", "units": 4} for i in range(30)]
    first = agent.handle_line(_day(DAY0 + timedelta(days=30), sales={"A": 4}, on_hand={"A": 3, "B": 0},
                                   catalog={"A": {"category": "tea", "price": 2.5}, "B": {"category": "tea"}},
                                   history=history))
    assert first["orders"]["A"] > 0 and set(first["orders"]) <= {"A", "B"}
    bad = [
        ("{", "line"),
        (_day(DAY0 + timedelta(days=31), on_hand={"A": -1}), "on_hand.A"),
        (_day(DAY0 + timedelta(days=31), sales={"A": "1.5"}), "sales.A"),
        (_day(DAY0 + timedelta(days=31), sales={"A": 1e20}), "sales.A"),  # not a count: refused, not planned for
        (_day(DAY0 + timedelta(days=31), on_order={"A": 1e12}), "on_order.A"),
        (_day(DAY0 + timedelta(days=31), on_hand={"A": "x"}), "on_hand.A"),
        (_day(DAY0 + timedelta(days=30)), "date"),  # not after the previous day
        (json.dumps({"sales": {}}), "date"),
        (_day(DAY0 + timedelta(days=31), catalog={"A": {"price": "cheap"}}), "catalog.A.price"),
        (_day(DAY0 + timedelta(days=31), history=[]), "history"),  # only on the first line
        (_day(DAY0 + timedelta(days=31), demand={"A": 3}), "demand"),
        ("[" * 100_000, "line"),  # nested deeper than the parser goes: an answer, not a crash
    ]
    for line, field in bad:
        out = agent.handle_line(line)
        assert out["error"]["field"] == field, (line, out)
    ok = agent.handle_line(_day(DAY0 + timedelta(days=31), sales={"A": 3}, on_hand={"A": 0, "B": 0},
                                on_order={"A": first["orders"]["A"]}))
    assert "orders" in ok and agent.days == 2


def test_returns_are_not_demand_a_negative_day_reads_as_zero_and_negative_history_rows_net_per_sku_day():
    history = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "A", "units": 3 + i % 4} for i in range(40)]
    # a return of 2 on every fifth day, and on day 7 one of 9 (more than the day sold: the day reads as 0)
    returns = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "A", "units": -2} for i in range(0, 40, 5)]
    returns.append({"date": (DAY0 + timedelta(days=7)).isoformat(), "sku": "A", "units": -9})
    netted = [{**r, "units": max(r["units"] - (2 if i % 5 == 0 else 0) - (9 if i == 7 else 0), 0)}
              for i, r in enumerate(history)]
    days = [(DAY0 + timedelta(days=40 + k), {"A": [5, -2, 4, 0, -6, 3][k % 6]}, {"A": 2 + k % 3}) for k in range(12)]

    def run(hist, sales_of):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=3)
        answers = []
        for k, (d, sales, on_hand) in enumerate(days):
            extra = {"history": hist, "catalog": {"A": {"category": "tea"}}} if k == 0 else {}
            answers.append(agent.handle_line(_day(d, sales=sales_of(sales), on_hand=on_hand, **extra)))
        return agent, answers

    with_returns, got = run(history + returns, lambda s: s)
    _, expected = run(netted, lambda s: {k: max(v, 0) for k, v in s.items()})
    assert got == expected and all("orders" in a for a in got)
    assert with_returns.history_return_rows == len(returns) and with_returns.returns_read_as_zero == 4
    _, skipped_instead = run(history, lambda s: {k: max(v, 0) for k, v in s.items()})
    assert skipped_instead != got  # the returns changed what the agent learned: they were netted, not dropped


def test_an_order_cancelled_the_day_it_was_placed_is_no_demand():
    history = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "JAR", "units": 20 + i % 3} for i in range(60)]
    spike = (DAY0 + timedelta(days=10)).isoformat()
    cancelled = history + [{"date": spike, "sku": "JAR", "units": 74215}, {"date": spike, "sku": "JAR", "units": -74215}]

    def first_order(hist):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7)
        out = agent.handle_line(_day(DAY0 + timedelta(days=60), sales={"JAR": 21}, on_hand={"JAR": 30},
                                     history=hist, catalog={"JAR": {"category": "kitchen"}}))
        return out["orders"].get("JAR", 0)

    assert first_order(cancelled) == first_order(history) < 400


def test_goods_sold_by_weight_are_read_in_whole_units_on_the_running_total():
    # 2.5 kg a day: the engine sees 3, 2, 3, 2, ... kilograms, exactly what a store selling whole units would feed
    days = 40
    history = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "FLOUR", "units": 2.5} for i in range(days)]
    whole = [{"date": r["date"], "sku": "FLOUR", "units": 3 if i % 2 == 0 else 2} for i, r in enumerate(history)]

    def run(hist, sales_of):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=3)
        answers = [agent.handle_line(_day(DAY0 + timedelta(days=days + k), sales={"FLOUR": sales_of(k)},
                                          on_hand={"FLOUR": 1.25 + k % 3}, on_order={"FLOUR": 0.5},
                                          **({"history": hist} if k == 0 else {})))
                   for k in range(10)]
        return agent, answers

    by_weight, got = run(history, lambda k: 2.5)
    by_unit, expected = run(whole, lambda k: 3 if k % 2 == 0 else 2)
    assert all("orders" in a for a in got) and any(a["orders"] for a in got)
    assert all(isinstance(q, int) for a in got for q in a["orders"].values())
    assert got == expected
    assert by_weight.fractional_skus == 1 and by_unit.fractional_skus == 0


def test_a_sku_selling_a_fraction_of_a_unit_a_day_is_not_read_as_selling_nothing():
    agent = ReplenishmentAgent(fill_rate=0.95, lead_time=2)
    ordered = 0
    for k in range(60):
        out = agent.handle_line(_day(DAY0 + timedelta(days=k), sales={"SAFFRON": 0.3}, on_hand={"SAFFRON": 0.4}))
        ordered += sum(out["orders"].values())
    assert agent._seen_total["SAFFRON"] == 18  # round(60 x 0.3): nothing lost to rounding
    assert 0.1 < agent.engine.level[agent.engine.index["SAFFRON"]] < 1.0
    assert ordered > 0


def test_history_rows_are_checked_field_by_field():
    agent = ReplenishmentAgent()
    out = agent.handle_line(_day(DAY0 + timedelta(days=5), history=[{"date": "2024-01-01", "sku": "A"}]))
    assert out["error"]["field"] == "history[0].units"
    out = agent.handle_line(_day(DAY0 + timedelta(days=5), history=[{"date": "2024-01-09", "sku": "A", "units": 1}]))
    assert out["error"]["field"] == "history[0].date"
    assert agent.days == 0  # nothing was applied


def test_history_rows_more_than_ten_years_back_are_counted_not_read():
    """A row dated 0001-01-01 by mistake would make the replay span two thousand years of days."""
    first = DAY0 + timedelta(days=40)
    history = [{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "A", "units": 3 + i % 4} for i in range(40)]
    ancient = [{"date": "0001-01-01", "sku": "A", "units": 500},
               {"date": (first - timedelta(days=MAX_HISTORY_DAYS + 1)).isoformat(), "sku": "B", "units": 9}]
    line = dict(sales={"A": 4}, on_hand={"A": 6}, catalog={"A": {"category": "tea"}})
    plain, with_ancient = ReplenishmentAgent(), ReplenishmentAgent()
    expected = plain.handle_line(_day(first, history=history, **line))
    got = with_ancient.handle_line(_day(first, history=ancient + history, **line))
    assert got == expected and "orders" in got
    assert with_ancient.history_rows_too_old == 2 and plain.history_rows_too_old == 0
    kept = [{"date": (first - timedelta(days=MAX_HISTORY_DAYS)).isoformat(), "sku": "A", "units": 1}]
    edge = ReplenishmentAgent()
    edge.handle_line(_day(first, history=kept + history, **line))
    assert edge.history_rows_too_old == 0  # ten years back to the day is still read


def test_a_hostile_or_missing_value_anywhere_in_a_line_is_answered_and_the_agent_goes_on():
    """Every place of a first line (history included), replaced by a hostile value or left out: the agent answers
    with orders or an error naming a field, never raises, and still answers the next day with whole positive
    orders."""
    first = DAY0 + timedelta(days=40)
    doc = json.loads(_day(first, sales={"A": 3, "B": 0}, on_hand={"A": 5, "B": 0}, on_order={"A": 2},
                          catalog={"A": {"category": "tea", "price": 1.5}, "B": {"category": "mugs", "price": 2}},
                          history=[{"date": (DAY0 + timedelta(days=i)).isoformat(), "sku": "AB"[i % 2],
                                    "units": i % 5} for i in range(40)]))
    answered = 0
    for at in list(places(doc, items_per_list=2)):
        for _, line in variants(doc, at):
            agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7)
            for text in (json.dumps(line), _day(date(9999, 12, 31), sales={"A": 1}, on_hand={"A": 1})):
                out = agent.handle_line(text)
                answered += 1
                assert ("orders" in out) != ("error" in out), (at, out)
                if "error" in out:
                    assert out["error"]["field"], (at, out)
                else:
                    assert all(isinstance(q, int) and q > 0 for q in out["orders"].values()), (at, out)
    assert answered > 1000


def test_review_days_place_orders_only_on_review_days():
    agent = ReplenishmentAgent(fill_rate=0.95, lead_time=3, review_days=3)
    answers = [agent.handle_line(_day(DAY0 + timedelta(days=i), sales={"A": 5}, on_hand={"A": 0}))["orders"]
               for i in range(9)]
    assert [bool(a) for a in answers] == [True, False, False] * 3


def test_bisection_reports_a_fill_the_sales_fed_baseline_cannot_reach_instead_of_clamping():
    # nothing sold in the history and nothing on the shelf: the sales-fed baseline sees only zero sales, orders
    # nothing at any z and fills 0; the demand-fed one learns the lost demand (fill 0.64 .. 0.87 over the z range).
    days = 120
    demand = np.zeros((2, days), dtype=np.int64)
    demand[:, 60:] = 5
    panel = DemandPanel(["a", "b"], pd.date_range(DAY0, periods=days), demand)
    sim = dict(lead_time=7, review_days=1, start=60, warmup=0, initial_on_hand=np.zeros(2, dtype=np.int64))
    by_sales = bisect_baseline_z(panel, 0.5, feed="sales", **sim)
    assert by_sales == {"z": None, "fill_rate": None, "avg_on_hand": None, "reachable": False, "matched": False,
                        "fill_range": [0.0, 0.0], "z_range": [-1.0, 6.0]}
    by_demand = bisect_baseline_z(panel, 0.8, feed="demand", **sim)
    assert by_demand["reachable"] and by_demand["matched"] and by_demand["fill_rate"] == 0.8
    assert bisect_baseline_z(panel, 0.5, feed="demand", **sim)["fill_range"] == [0.63667, 0.86667]
    # 50 units every 10th day: the fill moves in steps of whole lost orders, and a fill between two steps is
    # reported as the nearest one reached, marked unmatched, never passed off as equal
    lumpy = np.zeros((1, days), dtype=np.int64)
    lumpy[0, ::10] = 50
    panel = DemandPanel(["a"], pd.date_range(DAY0, periods=days), lumpy)
    between = bisect_baseline_z(panel, 0.343, feed="demand", **{**sim, "initial_on_hand": np.zeros(1, dtype=np.int64)})
    assert between["reachable"] and between["matched"] is False and between["fill_rate"] == pytest.approx(0.35)


# --- backtest and planner use the same engine ----------------------------------------------------------------
def test_backtest_drives_the_agent_and_compares_with_the_baseline_at_equal_fill():
    panel = _panel(8, n=15, days=330)
    calls: list[float] = []

    def factory(target):
        calls.append(target)
        return ReplenishmentAgent(fill_rate=target, lead_time=7).handle

    out = run_restock_backtest(panel, service_levels=(0.9, 0.95), test_days=120, warmup_days=28,
                               agent_factory=factory)
    assert calls == [0.9, 0.95]
    for t in out["targets"]:
        eq = t["baseline_at_equal_fill"]
        assert eq["fill_rate"] == pytest.approx(t["ours"]["fill_rate"], abs=5e-4)
        assert t["inventory_ratio_vs_baseline"] == pytest.approx(t["ours"]["avg_on_hand"] / eq["avg_on_hand"],
                                                                 rel=1e-3)
        sales_eq = t["sales_baseline_at_equal_fill"]
        assert sales_eq["reachable"] and sales_eq["matched"]
        assert sales_eq["fill_rate"] == pytest.approx(t["ours"]["fill_rate"], abs=5e-4)
        assert t["inventory_ratio_vs_sales_baseline"] == pytest.approx(
            t["ours"]["avg_on_hand"] / sales_eq["avg_on_hand"], rel=1e-3)
        assert t["sales_baseline_at_target_z"]["z"] == t["baseline_at_target_z"]["z"]
        # the two baselines are different policies: at the same z the sales-fed one fills less (it learns from
        # censored sales)
        assert t["sales_baseline_at_target_z"]["fill_rate"] < t["baseline_at_target_z"]["fill_rate"]
    assert "true demand" in out["baseline"] and "units sold" in out["sales_baseline"]
    default = run_restock_backtest(panel, service_levels=(0.9,), test_days=120, warmup_days=28)
    assert default["targets"][0]["ours"] == out["targets"][0]["ours"]  # the default is the shipped agent
    with pytest.raises(ValueError, match="fill-rate target"):
        run_restock_backtest(panel, service_levels=(1.2,))


class _Clock:
    def __init__(self, now):
        self._now = now

    def now(self):
        return self._now


class _Source:
    def __init__(self, history: dict[str, np.ndarray], last_day: date):
        self.history, self.last_day = history, last_day

    def positions(self):
        return [StockPosition(sku, "W1", 3, 0) for sku in self.history]

    def catalog(self):
        return {sku: CatalogEntry(sku, sku, "tea") for sku in self.history}

    def daily_demand(self, first_day, last_day):
        out = {}
        for sku, units in self.history.items():
            days = len(units)
            out[(sku, "W1")] = {self.last_day - timedelta(days=days - 1 - i): int(u) for i, u in enumerate(units)}
        return out


def test_planner_plans_with_the_engine_the_agent_runs():
    rng = np.random.default_rng(12)
    history = {"A": rng.poisson(6, 182), "B": rng.poisson(1.5, 182)}
    today = date(2024, 7, 1)
    planner = RestockPlanner(_Source(history, today - timedelta(days=1)), PolicyBook(),
                             _Clock(datetime(2024, 7, 1, 12, tzinfo=timezone.utc)))
    plan = planner.plan(fill_rate=0.95)
    engine = RestockEngine(lead_time=7, fill_rate=0.95)
    engine.ensure(["A@W1", "B@W1"])
    first = today - timedelta(days=182)
    replay_history(engine, np.stack([history["A"], history["B"]]).astype(float),
                   [(first + timedelta(days=i)).weekday() for i in range(182)])
    engine.levels()
    lines = {ln.sku: ln for ln in plan.lines}
    assert lines["A"].service_level == pytest.approx(engine.alpha)
    assert lines["A"].fill_rate_target == 0.95
    means = engine.daily_means(8 + 1)[:, 1:]  # the plan's day 1 is tomorrow
    assert lines["A"].lead_time_demand_mean == pytest.approx(means[0, :7].sum(), rel=1e-6)
    m_prot = means.sum(axis=1)
    up_to, rop = order_levels(engine.alpha, means[:, :7].sum(axis=1), m_prot, engine.sizes(m_prot), engine.t,
                              lead_time=7)
    assert [lines["A"].order_up_to, lines["B"].order_up_to] == up_to.tolist()  # the engine's levels, caps and all
    assert [lines["A"].reorder_point, lines["B"].reorder_point] == rop.tolist()
    # on hand 3, nothing on order: the engine's capped base-stock quantity (review period 1 day), capped or not
    want = order_shortfall(up_to, rop, 3, lead_time_days=7, review_days=1, order_cap=engine.t.order_cap)
    assert [lines["A"].order_qty, lines["B"].order_qty] == np.ceil(want).astype(int).tolist()
    assert [lines["A"].order_capped, lines["B"].order_capped] == (want < up_to - 3).tolist()


def test_engine_tuning_is_validated_naming_the_knob():
    with pytest.raises(ValueError, match="level_halflife"):
        EngineTuning(level_halflife=0)
    with pytest.raises(ValueError, match="unknown tuning"):
        EngineTuning.from_mapping({"gain": 1})


def test_fast_nb_quantiles_equal_scipys_integers():
    from scipy import stats

    from shopfloor.planning.lead_time import _nb_params
    from shopfloor.planning.restock_engine import nb_quantiles

    rng = np.random.default_rng(0)
    mean = np.concatenate([rng.gamma(0.5, 4.0, 3000) * 8, [0.0, 1e-4, 2500.0]])
    size = np.concatenate([rng.uniform(0.05, 5.0, 3000), [1.0, 1e6, 1e6]])
    for alpha in (0.5, 0.9, 0.98, 0.9995):
        r, p = _nb_params(mean, size)
        expected = np.where(mean > 0, np.nan_to_num(stats.nbinom.ppf(alpha, r, p)), 0).astype(np.int64)
        assert np.array_equal(nb_quantiles(alpha, mean, size), expected)


def test_new_skus_can_appear_on_any_line():
    agent = ReplenishmentAgent(fill_rate=0.95, lead_time=2)
    agent.handle_line(_day(DAY0, sales={"A": 2}, on_hand={"A": 1}))
    out = agent.handle_line(_day(DAY0 + timedelta(days=1), sales={"B": 3}, on_hand={"A": 0, "C": 4},
                                 on_order={"D": 2}))
    assert "orders" in out and set(out["orders"]) <= {"A", "B", "C", "D"}
    assert {"A", "B", "C", "D"} <= set(agent.engine.skus)


def test_optional_calibration_starts_from_a_level_that_met_the_target_on_the_history():
    panel = _panel(9, n=20, days=260, shift=False)
    wds = [d.weekday() for d in panel.dates]
    levels = {}
    for target in (0.85, 0.98):
        engine = RestockEngine(lead_time=7, fill_rate=target, tuning=EngineTuning(calibration_days=119))
        engine.ensure(panel.ids)
        levels[target] = replay_history(engine, panel.demand.astype(float), wds)
        assert engine.alpha == pytest.approx(levels[target])
    assert 0.5 <= levels[0.85] < levels[0.98] < 1
    short = RestockEngine(lead_time=7, fill_rate=0.9, tuning=EngineTuning(calibration_days=119))
    short.ensure(panel.ids)
    assert replay_history(short, panel.demand[:, :100].astype(float), wds[:100]) is None  # too little history


# --- censoring on lumpy demand --------------------------------------------------------------------------------
def _lumpy_panel(seed: int, n: int = 30, days: int = 200) -> DemandPanel:
    """Wholesale-like demand: a few orders a week, each of a heavy-tailed size (tens to hundreds of units)."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(0.4, size=(n, days))
    sizes = np.ceil(rng.pareto(1.8, size=(n, days)) * 15 + 1)
    return DemandPanel([f"w{i}" for i in range(n)], pd.date_range(DAY0, periods=days),
                       (orders * sizes).astype(np.int64))


def test_a_lumpy_history_shows_that_sold_out_days_hid_more_than_the_censored_estimate():
    """Replaying an uncensored history, the engine runs a sales-only store on its last days and measures how much
    of the lost demand its estimate missed: a lot on wholesale-like orders, less on smooth retail demand."""
    scales = {}
    for name, panel in (("lumpy", _lumpy_panel(4)), ("smooth", _panel(4, n=30, days=200, shift=False))):
        engine = RestockEngine(lead_time=7, fill_rate=0.95)
        engine.ensure(panel.ids)
        replay_history(engine, panel.demand.astype(float), [d.weekday() for d in panel.dates])
        scales[name] = engine.lost_scale
    assert scales["lumpy"] > 1.5
    assert 1.0 <= scales["smooth"] < scales["lumpy"]
    off = RestockEngine(lead_time=7, fill_rate=0.95, tuning=EngineTuning(lost_calibration_days=0))
    panel = _lumpy_panel(4)
    off.ensure(panel.ids)
    replay_history(off, panel.demand.astype(float), [d.weekday() for d in panel.dates])
    assert off.lost_scale == 1.0


def test_the_controller_raises_the_level_when_sold_out_days_hide_more_than_the_sales_show():
    """Same sales, same stock-outs: the engine that knows its sold-out days hide more lost demand (a larger
    ``lost_scale``) sees a lower fill and raises its quantile level; the other believes the sales were served."""
    rng = np.random.default_rng(7)
    engines = {}
    for scale in (1.0, 3.0):
        e = RestockEngine(lead_time=2, fill_rate=0.95)
        e.ensure([f"s{i}" for i in range(20)])
        for t in range(60):
            e.observe(t % 7, rng.poisson(5, 20).astype(float))
        e.lost_scale = scale
        e.set_alpha(0.95)
        engines[scale] = e
    rng = np.random.default_rng(8)
    for t in range(60, 120):
        sales = rng.poisson(5, 20).astype(float)
        on_hand = np.where(np.arange(20) < 4, 0.0, 5.0)  # 4 of 20 SKUs close at zero every day
        for e in engines.values():
            e.step(t % 7, sales, on_hand, np.zeros(20))
    assert engines[3.0].observed_fill < engines[1.0].observed_fill
    assert engines[3.0].alpha > engines[1.0].alpha
    assert (engines[3.0].levels()["order_up_to"] >= engines[1.0].levels()["order_up_to"]).all()


def test_lost_calibration_needs_enough_history_and_is_validated():
    with pytest.raises(ValueError, match="max_lost_scale"):
        EngineTuning(max_lost_scale=0.5)
    with pytest.raises(ValueError, match="lost_calibration_days"):
        EngineTuning(lost_calibration_days=-1)
    panel = _lumpy_panel(5, days=120)  # 120 < 91 + 56: too short to calibrate
    engine = RestockEngine(lead_time=7, fill_rate=0.95)
    engine.ensure(panel.ids)
    replay_history(engine, panel.demand.astype(float), [d.weekday() for d in panel.dates])
    assert engine.lost_scale == 1.0


# --- service allocation across SKUs --------------------------------------------------------------------------
def test_nb_quantiles_take_one_level_per_sku():
    from shopfloor.planning.restock_engine import nb_quantiles

    mean, size = np.array([5.0, 5.0, 40.0]), np.array([2.0, 2.0, 1e6])
    levels = np.array([0.5, 0.95, 0.99])
    each = [nb_quantiles(a, mean[i:i + 1], size[i:i + 1])[0] for i, a in enumerate(levels)]
    assert nb_quantiles(levels, mean, size).tolist() == each


@pytest.mark.parametrize("penalty, level", [(9.0, 0), (10.0, 1), (22.0, 1), (23.0, 2)])
def test_marginal_allocation_stocks_a_slow_sku_only_as_far_as_each_unit_buys_enough_sales(penalty, level):
    """Poisson lead-time demand 0.7, protection demand 0.8, by hand (e^-0.8 = 0.4493, e^-0.7 = 0.4966):

    cost(S) = E[(S - D_P)^+] + penalty * (E[(D_P - S)^+] - E[(D_L - S)^+])
    S = 0: 0 + penalty * (0.8 - 0.7) = 0.1 * penalty
    S = 1: 0.4493 + penalty * ((0.8 - 1 + 0.4493) - (0.7 - 1 + 0.4966)) = 0.4493 + 0.0527 * penalty
    S = 2: 1.2581 + penalty * (0.0581 - 0.0408) = 1.2581 + 0.0173 * penalty
    so S = 1 beats 0 above a penalty of 9.50, and S = 2 beats 1 above 22.85.
    """
    from shopfloor.planning.restock_engine import marginal_order_up_to

    got = marginal_order_up_to(penalty, np.array([0.7]), np.array([0.8]), np.array([1e6]))
    assert got.tolist() == [level]


def test_marginal_allocation_puts_the_safety_stock_where_a_unit_buys_the_most_sales():
    from shopfloor.planning.restock_engine import marginal_order_up_to, nb_quantiles

    lead = np.array([70.0, 0.7])  # a fast SKU and a slow one, Poisson
    prot = lead * 8 / 7
    size = np.array([1e6, 1e6])
    common = nb_quantiles(0.95, prot, size)
    marginal = marginal_order_up_to(0.95 / 0.05, lead, prot, size)
    assert marginal[0] >= common[0] and marginal[1] < common[1]


def test_marginal_allocation_is_a_policy_knob_that_still_meets_the_fill_formula():
    mean_lead = np.array([70.0, 7.0, 0.7, 3.0])
    m_prot = mean_lead * 8 / 7
    size = np.array([1e6, 0.5, 1e6, 2.0])
    for alloc in ("common", "marginal"):
        eng = RestockEngine(lead_time=7, fill_rate=0.95, tuning=EngineTuning(allocation=alloc))
        alpha = eng.initial_alpha(mean_lead, m_prot, size)
        up_to, rop = order_levels(alpha, mean_lead, m_prot, size, eng.t, lead_time=7)
        from shopfloor.planning.lead_time import nb_expected_shortfall
        from shopfloor.planning.restock_engine import lost_sales_shortfall

        short = nb_expected_shortfall(m_prot, size, up_to) - nb_expected_shortfall(mean_lead, size, up_to)
        lost = lost_sales_shortfall(np.maximum(short, 0), m_prot - mean_lead)
        fill = 1 - lost.sum() / (m_prot - mean_lead).sum()
        assert 0.95 <= fill < 0.97 and np.all(rop <= up_to)
    with pytest.raises(ValueError, match="allocation"):
        EngineTuning(allocation="greedy")


# --- day-of-month profile ---------------------------------------------------------------------------------------
def _month_panel(days: int = 420) -> DemandPanel:
    dates = pd.date_range(DAY0, periods=days)
    lam = np.where(dates.day <= 10, 15.0, 10.0)  # the first ten days of every month sell half as much again
    demand = np.random.default_rng(3).poisson(np.broadcast_to(lam, (12, days))).astype(np.int64)
    return DemandPanel([f"s{i}" for i in range(12)], dates, demand)


def test_the_day_of_month_profile_learns_a_pay_day_week_from_dated_history():
    panel = _month_panel()
    eng = RestockEngine(lead_time=7, tuning=EngineTuning(month_halflife=365.0))
    eng.ensure(panel.ids)
    replay_history(eng, panel.demand, panel.weekdays, first_day=panel.dates[0].date())
    f = eng.month_factors()
    assert f[:10].mean() > 1.2 and f[12:28].mean() < 0.95
    assert eng.day == panel.dates[-1].date()
    # the next 8 days (from 2025-02-23) are the quiet 24th-28th, then the 1st-3rd of March
    means = eng.daily_means(8).mean(axis=0)
    assert eng.day == date(2025, 2, 23)
    assert means[5:].min() > 1.2 * means[:5].max()


def test_without_dates_or_with_the_profile_off_the_month_has_no_effect():
    panel = _month_panel()
    for tuning, first_day in ((EngineTuning(month_halflife=365.0), None),
                              (EngineTuning(month_halflife=0.0), panel.dates[0].date())):
        eng = RestockEngine(lead_time=7, tuning=tuning)
        eng.ensure(panel.ids)
        replay_history(eng, panel.demand, panel.weekdays, first_day=first_day)
        assert np.all(eng.month_factors() == 1.0)


def test_a_scripted_month_of_agent_days_orders_more_ahead_of_the_pay_day_week():
    """Drive the agent one JSON line per day: flat sales except days 1-10 of each month. With the profile on,
    the agent raises its order-up-to level when the coming days hold pay days; without it, it cannot."""
    panel = _month_panel(days=400)
    start = 330  # 2024-11-26: the scripted days run to the end of the year and into January
    answers = {}
    for tuning in (EngineTuning(month_halflife=365.0), EngineTuning(month_halflife=0.0)):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7, tuning=tuning)
        history = [{"date": panel.dates[t].date().isoformat(), "sku": sku, "units": int(panel.demand[i, t])}
                   for t in range(start) for i, sku in enumerate(panel.ids)]
        levels = []
        for t in range(start, start + 40):
            line = {"date": panel.dates[t].date().isoformat(),
                    "sales": {sku: int(panel.demand[i, t]) for i, sku in enumerate(panel.ids)},
                    "on_hand": {sku: 400 for sku in panel.ids}}
            if t == start:
                line["history"] = history
            out = agent.handle_line(json.dumps(line))
            assert "orders" in out and not out["orders"]  # 400 on hand covers any level here
            levels.append((panel.dates[t].day, agent.engine.levels()["order_up_to"].mean()))
        answers[tuning.month_halflife] = levels
    on = dict(answers[365.0])
    off = dict(answers[0.0])
    # from the 5th the 8 days ahead (6th-13th) hold five pay days; from the 15th (16th-23rd) none
    assert on[5] > on[15] + 5
    assert on[5] - on[15] > off[5] - off[15] + 5


# --- the starting level --------------------------------------------------------------------------------------
def test_lost_sales_lose_fewer_units_than_the_backorder_formula_owes():
    from shopfloor.planning.restock_engine import lost_sales_shortfall

    # B = 0.1 of a 1-unit review period: 0.1 / 1.1 lost; B = 2 of 4: 2 / 1.5; no review demand: B itself
    got = lost_sales_shortfall(np.array([0.1, 2.0, 0.3]), np.array([1.0, 4.0, 0.0]))
    assert got == pytest.approx([0.1 / 1.1, 2.0 / 1.5, 0.3])


def test_the_lost_sales_start_begins_at_a_lower_level_for_the_same_target():
    mean_lead = np.array([70.0, 7.0, 0.7, 3.0])
    m_prot = mean_lead * 8 / 7
    size = np.array([1e6, 0.5, 1e6, 2.0])
    starts = [RestockEngine(lead_time=7, fill_rate=0.90, tuning=EngineTuning(lost_sales_start=on))
              .initial_alpha(mean_lead, m_prot, size) for on in (False, True)]
    assert starts[1] < starts[0]
    with pytest.raises(ValueError, match="lost_sales_start"):
        EngineTuning(lost_sales_start="yes")


def test_the_policy_files_engine_section_reaches_the_planner():
    rng = np.random.default_rng(12)
    history = {"A": rng.poisson(6, 182), "B": rng.poisson(1.5, 182)}
    today = date(2024, 7, 1)
    plans = {}
    for engine_section in ({}, {"allocation": "marginal", "month_halflife": 365}):
        book = PolicyBook.from_mapping({"engine": engine_section})
        planner = RestockPlanner(_Source(history, today - timedelta(days=1)), book,
                                 _Clock(datetime(2024, 7, 1, 12, tzinfo=timezone.utc)))
        plans[bool(engine_section)] = {ln.sku: ln for ln in planner.plan(fill_rate=0.95).lines}
    engine = RestockEngine(lead_time=7, fill_rate=0.95, tuning=EngineTuning(allocation="marginal",
                                                                           month_halflife=365))
    engine.ensure(["A@W1", "B@W1"])
    first = today - timedelta(days=182)
    replay_history(engine, np.stack([history["A"], history["B"]]).astype(float),
                   [(first + timedelta(days=i)).weekday() for i in range(182)], first_day=first)
    engine.levels()
    assert plans[True]["A"].service_level == pytest.approx(engine.alpha)  # the penalty's critical ratio
    assert plans[True]["A"].service_level != pytest.approx(plans[False]["A"].service_level)


# --- dormant SKUs that come back ------------------------------------------------------------------------------
def test_the_restart_level_is_the_mean_demand_of_the_weeks_after_a_dormant_sku_sells_again():
    from shopfloor.planning.restock_engine import restart_level

    series = np.zeros((3, 120))
    series[0, 40:68] = 10.0  # asleep 40 days, then 10 a day for 28 days
    series[1, 50:78:2] = 4.0  # asleep 50 days, then 4 every other day
    series[2, :] = 1.0  # never asleep: no restart
    assert restart_level(series, 28) == pytest.approx((280 + 56) / 56)
    assert restart_level(series[2:], 28) == 0.0


def test_a_dormant_sku_that_sells_out_its_presence_stock_restarts_at_the_historys_restart_level():
    """A SKU asleep for 40 days sells its one presence unit and closes at zero: the demand that came back is
    hidden, so it restarts at the level measured on the history's restarts and orders for it; with the knob off
    it orders a few units, as before."""
    skus = ["busy", "asleep"]
    history = np.zeros((2, 150))
    history[0] = 5.0
    history[1, 40:68] = 6.0  # a restart in the history: 6 a day for 4 weeks, then asleep again
    orders = {}
    for days in (0, 28):
        e = RestockEngine(lead_time=7, fill_rate=0.95, tuning=EngineTuning(restart_days=days))
        e.ensure(skus)
        replay_history(e, history, [t % 7 for t in range(150)], lost_calibration=False)
        assert e.restart_level == (pytest.approx(6.0) if days else 0.0)
        orders[days] = e.step(150 % 7, np.array([5.0, 1.0]), np.array([20.0, 0.0]), np.zeros(2))
        if days:
            assert e.level[1] == pytest.approx(6.0)
    assert orders[28][1] >= 6 * 8 and orders[0][1] <= 5
    assert orders[28][0] == orders[0][0]  # the busy SKU is untouched
    with pytest.raises(ValueError, match="restart_days"):
        EngineTuning(restart_days=-1)


def test_a_controller_that_keeps_missing_a_high_target_steers_past_the_old_cap_and_stops_at_max_alpha():
    engine = RestockEngine(lead_time=7, fill_rate=0.98)
    engine.ensure(["A"])
    engine.set_alpha(0.99)
    engine.orders_placed_days = 10  # past the first lead time: the controller acts
    for _ in range(400):
        engine.record_fill(95.0, 100.0)  # the store keeps filling 0.95 of a 0.98 target
    assert engine.alpha > 0.9995  # the cap before 2026-12-04, where the UCI selection panel sat pinned
    assert engine.alpha == pytest.approx(EngineTuning().max_alpha)


# --- lost-sales inventory position (lost_sales_position; measured, off by default) -------------------------------
def _lead_levels(engine: RestockEngine, daily: float, days: int = 8) -> dict:
    means = np.full((1, days), daily)
    return {"means": means, "mean_protect": means.sum(axis=1), "size": np.array([1e9])}  # Poisson


def test_an_empty_shelf_with_nothing_on_order_loses_the_whole_lead_time_demand():
    eng = RestockEngine(lead_time=7, tuning=EngineTuning(lost_sales_position=True))
    eng.ensure(["a"])
    lost = eng.expected_lead_loss(_lead_levels(eng, 10.0), np.array([0.0]), np.array([0.0]))
    assert lost == pytest.approx([70.0], rel=1e-6)
    plenty = eng.expected_lead_loss(_lead_levels(eng, 10.0), np.array([1000.0]), np.array([1000.0]))
    assert plenty == pytest.approx([0.0], abs=1e-9)


def test_stock_on_order_counts_from_the_day_the_engines_own_order_arrives():
    eng = RestockEngine(lead_time=7, tuning=EngineTuning(lost_sales_position=True))
    eng.ensure(["a"])
    lv = _lead_levels(eng, 10.0)
    # 70 units on order that the engine did not place: taken as arriving tomorrow, so little is lost
    early = float(eng.expected_lead_loss(lv, np.array([0.0]), np.array([70.0]))[0])
    # the same 70 units ordered by the engine yesterday arrive on day 7: days 1-6 (60 units expected) are lost
    eng.order_log[0, (eng.days_seen - 1) % 8] = 70
    late = float(eng.expected_lead_loss(lv, np.array([0.0]), np.array([70.0]))[0])
    assert early < 5.0
    assert late == pytest.approx(60.0, abs=0.5)
    # and the result is a lower bound of the simulated expectation of max_j (D_1..j - stock_j)^+
    rng = np.random.default_rng(1)
    d = rng.poisson(10.0, size=(200_000, 7)).cumsum(axis=1)
    stock = np.array([0, 0, 0, 0, 0, 0, 70])
    assert late <= np.maximum(d - stock, 0).max(axis=1).mean() + 0.05


def test_with_the_lost_sales_position_an_empty_shelf_waiting_for_its_order_orders_less():
    rng = np.random.default_rng(3)
    history = rng.poisson(10.0, size=(1, 120)).astype(float)
    qty = {}
    for on in (False, True):
        eng = RestockEngine(lead_time=7, tuning=EngineTuning(lost_sales_position=on, forecast_model="level"))
        eng.ensure(["a"])
        replay_history(eng, history, [j % 7 for j in range(120)], calibrate=False)
        eng.order_log[0, (eng.days_seen - 1) % 8] = 70  # yesterday's order: arrives in 7 days
        empty = eng.orders(np.array([70.0]), on_hand=np.array([0.0]))
        stocked = eng.orders(np.array([150.0]), on_hand=np.array([80.0]))
        qty[on] = (int(empty[0]), int(stocked[0]))
    assert qty[True][0] < qty[False][0]  # the units an empty shelf loses this week do not need replacing
    assert qty[True][1] == qty[False][1]  # with stock on the shelf nothing is expected lost: same order
    with pytest.raises(ValueError, match="lost_sales_position"):
        EngineTuning(lost_sales_position="yes")
