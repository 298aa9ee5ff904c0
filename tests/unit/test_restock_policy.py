"""Restock policy math: positions, rounding, quantiles, stockout dates, sell-out risks and alternatives."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from scipy import stats

from shopfloor.planning.lead_time import (
    DemandOutlook,
    EmpiricalDemand,
    NegBinomialDemand,
    fill_rate_base_stock,
    nb_expected_shortfall,
    nb_fill_rate_base_stock_batch,
)
from shopfloor.planning.restock import (
    CatalogEntry,
    PolicyBook,
    ReplenishmentPolicy,
    StockPosition,
    build_restock_plan,
    inventory_position,
    order_shortfall,
    plan_line,
    projected_stockout_day,
    round_order_quantities,
    round_order_quantity,
)

AS_OF = date(2026, 3, 2)


def test_inventory_position_adds_on_order_and_subtracts_reserved():
    assert inventory_position(on_hand=10, on_order=5, reserved=3) == 12
    assert inventory_position(0, 0, 0) == 0
    with pytest.raises(ValueError):
        inventory_position(-1, 0, 0)


@pytest.mark.parametrize(
    "raw, moq, pack, expected",
    [(0, 10, 6, 0), (-4, 10, 6, 0), (1, 1, 1, 1), (3, 10, 1, 10), (11, 10, 6, 12), (13, 1, 12, 24),
     (7, 5, 5, 10), (0.2, 1, 1, 1), (24, 24, 12, 24)],
)
def test_order_quantity_respects_moq_then_whole_packs(raw, moq, pack, expected):
    assert round_order_quantity(raw, moq, pack) == expected
    assert round_order_quantities(np.array([raw]), moq, pack)[0] == expected


def test_order_quantity_rejects_nonsense_moq_and_pack_size():
    with pytest.raises(ValueError):
        round_order_quantity(5, moq=0)
    with pytest.raises(ValueError):
        round_order_quantity(5, pack_size=0)


def test_projected_stockout_day_counts_scheduled_receipts():
    means = [2.0] * 10
    assert projected_stockout_day(5, means) == 3  # 5 - 2 - 2 = 1, then -1 on day 3
    assert projected_stockout_day(5, means, {3: 4}) == 5  # receipt on day 3 pushes it out two days
    assert projected_stockout_day(100, means) is None
    assert projected_stockout_day(0, [0.0, 0.5]) == 2


def test_negative_binomial_matches_scipy_and_poisson_limit():
    d = NegBinomialDemand(mean=12.0, size=3.0)
    n, p = 3.0, 3.0 / 15.0
    assert d.quantile(0.9) == int(stats.nbinom.ppf(0.9, n, p))
    assert d.variance == pytest.approx(12 + 144 / 3)
    pois = NegBinomialDemand(mean=4.0, size=math.inf)
    assert pois.quantile(0.95) == int(stats.poisson.ppf(0.95, 4.0))
    assert NegBinomialDemand(0.0, 1.0).quantile(0.99) == 0


@pytest.mark.parametrize("mean, size", [(3.2, 0.7), (50.0, 5.0), (0.3, 1e9), (120.0, 2.0)])
def test_closed_form_expected_shortfall_matches_direct_sum(mean, size):
    dist = NegBinomialDemand(mean, size)
    for s in (0, 1, 2, 5, 40, 130):
        direct = sum((x - s) * p for x, p in enumerate(stats.nbinom.pmf(np.arange(4000), size, size / (size + mean))) if x > s)
        assert dist.expected_shortfall(s) == pytest.approx(direct, abs=1e-6)
        assert float(nb_expected_shortfall(np.array([mean]), np.array([size]), np.array([s]))[0]) == pytest.approx(direct, abs=1e-6)


def test_batch_fill_rate_levels_equal_the_scalar_search():
    rng = np.random.default_rng(0)
    mp = rng.uniform(0, 80, 40)
    ml = mp * 7 / 8
    k = rng.uniform(0.3, 20, 40)
    batch = nb_fill_rate_base_stock_batch(mp, ml, k, 0.95)
    scalar = [fill_rate_base_stock(NegBinomialDemand(a, c), NegBinomialDemand(b, c), a - b, 0.95) for a, b, c in zip(mp, ml, k)]
    assert batch.tolist() == scalar


def test_fill_rate_level_is_the_smallest_that_reaches_the_target():
    prot, lead = NegBinomialDemand(16.0, 4.0), NegBinomialDemand(14.0, 4.0)
    s = fill_rate_base_stock(prot, lead, 2.0, 0.95)

    def fill(level):
        return 1 - (prot.expected_shortfall(level) - lead.expected_shortfall(level)) / 2.0

    assert fill(s) >= 0.95 > fill(s - 1)


def test_sample_path_outlook_gives_empirical_quantiles():
    paths = np.array([[1, 1], [0, 0], [3, 2], [2, 2]])
    outlook = DemandOutlook(np.array([1.5, 1.25]), sample_paths=paths)
    d = outlook.over(0, 2)
    assert isinstance(d, EmpiricalDemand)
    assert d.quantile(0.5) == 2 and d.quantile(0.99) == 5
    assert d.prob_exceeds(2) == 0.5
    assert d.expected_shortfall(2) == pytest.approx((0 + 0 + 3 + 2) / 4)


def test_outlook_rejects_negative_means_and_too_short_windows():
    with pytest.raises(ValueError):
        DemandOutlook(np.array([1.0, -1.0]))
    with pytest.raises(ValueError):
        DemandOutlook(np.array([1.0])).over(0, 3)


def test_policy_book_layers_defaults_supplier_and_sku():
    book = PolicyBook.from_mapping({
        "defaults": {"lead_time_days": 5, "service_level": 0.9},
        "suppliers": {"acme": {"lead_time_days": 12, "moq": 24}},
        "skus": {"S1": {"supplier": "acme", "pack_size": 6}, "S2": {"service_level": 0.99}},
    })
    s1 = book.for_sku("S1")
    assert (s1.lead_time_days, s1.moq, s1.pack_size, s1.service_level, s1.supplier) == (12, 24, 6, 0.9, "acme")
    assert book.for_sku("S2").service_level == 0.99 and book.for_sku("S2").lead_time_days == 5
    assert book.for_sku("S3", supplier="acme").lead_time_days == 12  # supplier known from an open PO
    assert PolicyBook().for_sku("X") == ReplenishmentPolicy(7, 1, 0.95, 1, 1)


@pytest.mark.parametrize(
    "data, fragment",
    [({"defaults": {"lead_time": 3}}, "unknown policy key"), ({"skus": {"A": {"moq": 0}}}, "skus.A"),
     ({"suppliers": {"x": {"service_level": 1.5}}}, "suppliers.x"), ({"sku": {}}, "unknown section"),
     ({"defaults": {"order_cap": 0.5}}, "order_cap"), ({"skus": {"B": {"order_cap": True}}}, "skus.B"),
     (["defaults"], "policy file: expected a table"), ({"defaults": 5}, "defaults: expected a table"),
     ({"suppliers": {"acme": [1, 2]}}, "suppliers.acme: expected a table"), ({"skus": "A"}, "skus: expected")],
)
def test_policy_book_rejects_bad_configuration_naming_where(data, fragment):
    with pytest.raises(ValueError, match=fragment):
        PolicyBook.from_mapping(data)


def test_policy_book_loads_toml_and_json(tmp_path):
    (tmp_path / "p.toml").write_text('[defaults]\nlead_time_days = 3\n[skus."A-1"]\nmoq = 5\n')
    (tmp_path / "p.json").write_text('{"defaults": {"review_days": 7}}')
    assert PolicyBook.load(tmp_path / "p.toml").for_sku("A-1").moq == 5
    assert PolicyBook.load(tmp_path / "p.json").for_sku("Z").review_days == 7
    with pytest.raises(ValueError, match="not found"):
        PolicyBook.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[defaults\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        PolicyBook.load(tmp_path / "bad.toml")


def test_policy_book_loads_yaml_like_the_rules_files_and_names_what_is_wrong(tmp_path):
    (tmp_path / "p.yaml").write_text("defaults:\n  lead_time_days: 3\nskus:\n  A-1: {moq: 5}\n")
    book = PolicyBook.load(tmp_path / "p.yaml")
    assert book.for_sku("A-1").moq == 5 and book.for_sku("Z").lead_time_days == 3
    (tmp_path / "empty.yml").write_text("")
    assert PolicyBook.load(tmp_path / "empty.yml") == PolicyBook()
    (tmp_path / "bad.yaml").write_text("defaults: [\n")
    with pytest.raises(ValueError, match=r"bad.yaml is not valid YAML at line 2, column 1"):
        PolicyBook.load(tmp_path / "bad.yaml")
    (tmp_path / "p.ini").write_text("[defaults]\n")
    with pytest.raises(ValueError, match=r"unsupported extension '.ini' \(use .toml, .yaml, .yml, .json\)"):
        PolicyBook.load(tmp_path / "p.ini")


def _flat(mean: float, days: int = 30, size: float = math.inf) -> DemandOutlook:
    return DemandOutlook(np.full(days, mean), size)


def test_plan_line_orders_up_to_the_protection_quantile_in_packs():
    policy = ReplenishmentPolicy(lead_time_days=7, review_days=1, service_level=0.95, moq=10, pack_size=6, order_cap=0)
    pos = StockPosition("A", "W1", on_hand=10, reserved=2, open_receipts=((date(2026, 3, 5), 4),))
    line = plan_line(pos, _flat(3.0), policy, AS_OF)
    up_to = int(stats.poisson.ppf(0.95, 24.0))
    assert line.inventory_position == 12
    assert line.order_up_to == up_to
    assert line.reorder_point == int(stats.poisson.ppf(0.95, 21.0))
    raw = up_to - 12
    assert line.order_qty == -(-max(raw, 10) // 6) * 6
    assert line.urgent  # 12 <= reorder point
    assert line.order_by == AS_OF and line.expected_arrival == date(2026, 3, 9)
    # available 8; 3/day: day1 5, day2 2, day3 receipt 4 -> 3, day4 0, day5 -3
    assert line.projected_stockout_date == date(2026, 3, 7)
    assert line.next_replenishment == date(2026, 3, 5)


def test_capped_base_stock_limits_an_order_while_stock_is_healthy_but_restores_the_reorder_point():
    # level 80, reorder point 70, L=7, R=1: the cap is ceil(1.25 * 80 / 8) = 13 units per order
    kw = dict(lead_time_days=7, review_days=1, order_cap=1.25)
    assert float(order_shortfall(80, 70, 75, **kw)) == 5  # under the cap: the plain shortfall
    assert float(order_shortfall(80, 70, 60, **kw)) == 13  # capped (plain: 20); position 73 >= reorder point
    assert float(order_shortfall(80, 70, 40, **kw)) == 30  # the cap would leave 53 < 70: back to the reorder point
    assert float(order_shortfall(80, 70, 90, **kw)) == 0
    assert float(order_shortfall(80, 70, 60, lead_time_days=7, review_days=1, order_cap=0)) == 20  # no cap
    # weekly review: the cap is per review period, 1.25 * 80 * 7 / 14 = 50
    assert float(order_shortfall(80, 40, 0, lead_time_days=7, review_days=7, order_cap=1.25)) == 50
    got = order_shortfall(np.array([80, 80, 80]), np.array([70, 70, 70]), np.array([75, 60, 40]), **kw)
    assert got.tolist() == [5, 13, 30]


def test_plan_line_caps_the_order_at_the_reorder_point_when_that_is_more():
    policy = ReplenishmentPolicy(lead_time_days=7, review_days=1, service_level=0.95, moq=10, pack_size=6)
    pos = StockPosition("A", "W1", on_hand=10, reserved=2, open_receipts=((date(2026, 3, 5), 4),))
    line = plan_line(pos, _flat(3.0), policy, AS_OF)
    # position 12, reorder point 29, level 32: the cap (ceil(1.25 * 32 / 8) = 5) would leave 17 < 29,
    # so the order restores the reorder point (17 units), then whole packs of 6
    assert (line.reorder_point, line.order_up_to) == (29, 32)
    assert line.order_qty == 18 and line.order_capped
    healthy = plan_line(StockPosition("A", "W1", on_hand=25, reserved=0), _flat(3.0), policy, AS_OF)
    assert healthy.order_qty == 12 and healthy.order_capped  # shortfall 7 -> capped at 5 -> MOQ 10 -> packs of 6
    small = plan_line(StockPosition("A", "W1", on_hand=29, reserved=0), _flat(3.0), policy, AS_OF)
    assert not small.order_capped and small.order_qty == 12  # shortfall 3 is under the cap -> MOQ 10 -> 12


def test_urgent_means_the_position_may_not_last_until_an_order_placed_now_arrives_even_under_an_engines_levels():
    # An engine's base stock: reorder point = order-up-to level (a daily top-up). Lead-time demand 7 x 3 = 21
    # (0.95 quantile 29); the level, for 8 days, is 40.
    policy = ReplenishmentPolicy(lead_time_days=7, review_days=1, service_level=0.95, order_cap=0)
    positions = [StockPosition("ROUTINE", "W1", on_hand=35, reserved=0), StockPosition("SHORT", "W1", 20, 0)]
    outlooks = {(p.sku, "W1"): _flat(3.0) for p in positions}
    plan = build_restock_plan(positions, outlooks, {}, PolicyBook(), AS_OF,
                              policy_for={(p.sku, "W1"): policy for p in positions},
                              levels={(p.sku, "W1"): (40, 40) for p in positions})
    lines = {ln.sku: ln for ln in plan.lines}
    assert lines["ROUTINE"].order_qty == 5 and not lines["ROUTINE"].urgent  # 35 covers the 29 of lead-time demand
    assert lines["SHORT"].order_qty == 20 and lines["SHORT"].urgent
    assert lines["ROUTINE"].reorder_point == lines["ROUTINE"].order_up_to == 40


def test_plan_line_orders_nothing_when_position_covers_the_target():
    line = plan_line(StockPosition("A", "W1", 500, 0), _flat(3.0), ReplenishmentPolicy(), AS_OF)
    assert line.order_qty == 0 and line.order_by is None and not line.urgent
    assert line.stockout_probability == pytest.approx(0.0, abs=1e-9)


def test_sell_out_risk_suggests_suppressing_promotion_and_in_stock_alternatives():
    catalog = {
        "TEA-1": CatalogEntry("TEA-1", "Green tea", "tea"),
        "TEA-2": CatalogEntry("TEA-2", "Black tea", "tea"),
        "TEA-3": CatalogEntry("TEA-3", "White tea", "tea"),
        "TEA-4": CatalogEntry("TEA-4", "Oolong", "tea"),
        "MUG-1": CatalogEntry("MUG-1", "Mug", "kitchen"),
    }
    positions = [
        StockPosition("TEA-1", "W1", on_hand=3, reserved=1),  # 2 available, sells 5/day: gone tomorrow
        StockPosition("TEA-2", "W1", on_hand=40, reserved=0),
        StockPosition("TEA-3", "W1", on_hand=5, reserved=5),  # nothing available: not an alternative
        StockPosition("TEA-4", "W2", on_hand=90, reserved=0),  # other warehouse: listed after same-warehouse ones
        StockPosition("MUG-1", "W1", on_hand=100, reserved=0),  # other category
    ]
    outlooks = {(p.sku, p.warehouse): _flat(0.1) for p in positions}
    outlooks[("TEA-1", "W1")] = _flat(5.0)
    plan = build_restock_plan(positions, outlooks, catalog, PolicyBook(), AS_OF, risk_threshold=0.5)
    assert [r.sku for r in plan.risks] == ["TEA-1", "TEA-3"]
    tea1 = plan.risks[0]
    assert tea1.actions[0] == "suppress_promotion" and "offer_alternatives" in tea1.actions
    assert [(a.sku, a.warehouse) for a in tea1.alternatives] == [("TEA-2", "W1"), ("TEA-4", "W2")]
    assert tea1.stockout_probability > 0.99
    body = plan.to_dict()
    assert body["summary"]["sell_out_risks"] == 2
    assert body["sell_out_risks"][0]["alternatives"][0]["sku"] == "TEA-2"


def test_plan_rejects_outlook_shorter_than_lead_time_plus_review():
    pos = [StockPosition("A", "W1", 1, 0)]
    with pytest.raises(ValueError, match="covers 3 days"):
        build_restock_plan(pos, {("A", "W1"): _flat(1.0, days=3)}, {}, PolicyBook(), AS_OF)


def test_plan_csv_rows_have_every_column():
    plan = build_restock_plan([StockPosition("A", "W1", 1, 0)], {("A", "W1"): _flat(2.0)}, {}, PolicyBook(), AS_OF)
    row = plan.csv_rows()[0]
    assert list(row) == list(plan.CSV_COLUMNS) and row["order_qty"] > 0


def test_vectorised_plan_numbers_equal_the_one_line_path():
    rng = np.random.default_rng(11)
    positions, outlooks = [], {}
    book = PolicyBook.from_mapping({"skus": {"S3": {"lead_time_days": 3, "service_level": 0.99, "moq": 7}}})
    for i in range(12):
        pos = StockPosition(f"S{i}", "W1", int(rng.integers(0, 60)), int(rng.integers(0, 5)),
                            ((date(2026, 3, 4 + i % 5), 6),) if i % 3 == 0 else ())
        positions.append(pos)
        outlooks[(pos.sku, "W1")] = DemandOutlook(rng.gamma(1.0, 3.0, size=30), float(rng.uniform(0.5, 50)))
    outlooks[("S5", "W1")] = DemandOutlook(np.zeros(30), 2.0)
    plan = build_restock_plan(positions, outlooks, {}, book, AS_OF)
    assert [line.sku for line in plan.lines] == sorted(pos.sku for pos in positions)  # a line for every position
    for line, pos in zip(plan.lines, sorted(positions, key=lambda p: p.sku)):
        one = plan_line(pos, outlooks[(pos.sku, "W1")], book.for_sku(pos.sku), AS_OF)
        assert line.to_dict() == one.to_dict()


def test_the_engine_section_of_a_policy_file_sets_the_engine_knobs_and_names_a_bad_one(tmp_path):
    (tmp_path / "p.toml").write_text('[defaults]\nfill_rate = 0.95\n[engine]\nmonth_halflife = 365\n'
                                     'allocation = "marginal"\n')
    tuning = PolicyBook.load(tmp_path / "p.toml").engine_tuning()
    assert tuning.month_halflife == 365 and tuning.allocation == "marginal"
    assert PolicyBook().engine_tuning().allocation == "common"  # no section: the shipped defaults
    for bad, fragment in (({"engine": {"allocation": "greedy"}}, "engine: allocation"),
                          ({"engine": {"month": 1}}, "engine: unknown tuning"),
                          ({"engine": [1]}, "engine: expected a table")):
        with pytest.raises(ValueError, match=fragment):
            PolicyBook.from_mapping(bad)
