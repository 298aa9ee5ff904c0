"""The restock planner's model cache: what a plan reuses, and what makes it fit and replay again."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from shopfloor.planning import restock_gbm
from shopfloor.planning.restock import CatalogEntry, PolicyBook, StockPosition
from shopfloor.planning.restock_cache import RestockModelCache, stamp_history
from shopfloor.planning.restock_service import RestockPlanner

START = date(2024, 1, 1)


class _Clock:
    def __init__(self, today: date):
        self.today = today

    def now(self):
        return datetime(self.today.year, self.today.month, self.today.day, 12, tzinfo=timezone.utc)


class _Store:
    """Daily demand of a few SKUs from START on, as the planner's data source."""

    def __init__(self, skus: int = 24, days: int = 260, seed: int = 3):
        rng = np.random.default_rng(seed)
        rates = np.exp(rng.normal(0.5, 1.0, skus))
        self.units = {f"S{i}": rng.poisson(rates[i], days) for i in range(skus)}

    def positions(self):
        return [StockPosition(sku, "W1", 2, 0) for sku in self.units]

    def catalog(self):
        return {sku: CatalogEntry(sku, sku, "tea") for sku in self.units}

    def daily_demand(self, first_day, last_day):
        out = {}
        for sku, units in self.units.items():
            out[(sku, "W1")] = {START + timedelta(days=i): int(u) for i, u in enumerate(units)
                                if first_day <= START + timedelta(days=i) <= last_day}
        return out


@pytest.fixture
def fits(monkeypatch):
    """Counts the global model's fits."""
    calls = []
    real = restock_gbm.fit_global

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(restock_gbm, "fit_global", counting)
    return calls


def _planner(store, today, cache, book=None):
    return RestockPlanner(store, book or PolicyBook(), _Clock(today), cache=cache)


def _numbers(plan):
    return [(ln.sku, ln.reorder_point, ln.order_up_to, ln.order_qty, round(ln.service_level, 9),
             round(ln.mean_daily_demand, 9)) for ln in plan.lines]


TODAY = START + timedelta(days=200)


def test_a_second_plan_on_the_same_history_neither_refits_nor_replays(fits):
    store, cache = _Store(), RestockModelCache(refit_days=7)
    first = _planner(store, TODAY, cache).plan()
    assert len(fits) == 1 and cache.stats()["level_misses"] == 1
    second = _planner(store, TODAY, cache).plan()
    assert len(fits) == 1, "the second plan fitted the model again"
    assert cache.stats()["level_hits"] == 1
    assert _numbers(second) == _numbers(first)
    # and the cached plan is the plan an uncached planner makes
    assert _numbers(_planner(store, TODAY, None).plan()) == _numbers(first)


def test_new_days_within_the_refit_cadence_reuse_the_model_and_past_it_refit(fits):
    store, cache = _Store(), RestockModelCache(refit_days=3)
    _planner(store, TODAY, cache).plan()
    for ahead in (1, 2):
        _planner(store, TODAY + timedelta(days=ahead), cache).plan()
    assert len(fits) == 1, "new days within the cadence refitted"
    assert cache.stats()["level_misses"] == 3, "each new day replays its own history"
    _planner(store, TODAY + timedelta(days=3), cache).plan()
    assert len(fits) == 2, "three new days, cadence 3: no refit"


def test_a_changed_past_day_refits_and_replays(fits):
    store, cache = _Store(), RestockModelCache(refit_days=7)
    before = _planner(store, TODAY, cache).plan()
    store.units["S0"][150] += 40  # a late order on a day the model was fitted on
    after = _planner(store, TODAY, cache).plan()
    assert len(fits) == 2 and cache.stats()["level_hits"] == 0
    assert _numbers(after) == _numbers(_planner(store, TODAY, None).plan())
    assert _numbers(after) != _numbers(before)


def test_a_new_fill_rate_replays_on_the_same_model_and_a_new_lead_time_refits(fits):
    store, cache = _Store(), RestockModelCache(refit_days=7)
    base = _planner(store, TODAY, cache).plan()
    higher = _planner(store, TODAY, cache).plan(fill_rate=0.99)
    assert len(fits) == 1, "the model does not depend on the fill-rate target"
    assert cache.stats()["level_misses"] == 2
    assert higher.lines[0].service_level > base.lines[0].service_level
    longer = _planner(store, TODAY, cache, PolicyBook.from_mapping({"defaults": {"lead_time_days": 14}})).plan()
    assert len(fits) == 2 and fits[-1] == fits[0], "a new horizon needs its own model"
    assert longer.lines[0].lead_time_days == 14
    level = _planner(store, TODAY, cache, PolicyBook.from_mapping({"engine": {"forecast_model": "level"}})).plan()
    assert len(fits) == 2 and _numbers(level) == _numbers(_planner(
        store, TODAY, None, PolicyBook.from_mapping({"engine": {"forecast_model": "level"}})).plan())


def test_concurrent_plans_fit_once_and_agree(fits):
    store, cache = _Store(), RestockModelCache(refit_days=7)
    out, errors = [], []

    def run():
        try:
            out.append(_numbers(_planner(store, TODAY, cache).plan()))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fits) == 1 and cache.stats()["level_misses"] == 1
    assert all(o == out[0] for o in out)


def test_the_cache_stays_within_its_bounds():
    cache = RestockModelCache(refit_days=7, max_models=2, max_level_bytes=1000)
    stamp = stamp_history(["a"], np.ones((1, 10)), START)
    for horizon in range(5):
        cache.model(("k", horizon), stamp, lambda: object())
    assert cache.stats()["models"] == 2
    for i in range(5):
        cache.levels(i, lambda: (np.zeros(50), 0.5))  # 400 bytes each
    assert cache.stats()["level_bytes"] <= 1000 and cache.stats()["level_entries"] == 2
    big = cache.levels("big", lambda: (np.zeros(500), 0.5))  # larger than the whole budget: served, not kept
    assert big[0].shape == (500,) and "big" not in cache._levels
    with pytest.raises(ValueError):
        big[0][0] = 1.0  # handed out read-only


def test_a_history_stamp_names_each_day():
    h = np.arange(12.0).reshape(2, 6)
    a = stamp_history(["x", "y"], h, START)
    assert a.last_day == START + timedelta(days=5)
    b = stamp_history(["x", "y"], h[:, 1:], START + timedelta(days=1))
    assert a.day(START + timedelta(days=3)) == b.day(START + timedelta(days=3))
    assert stamp_history(["x", "z"], h, START).keys != a.keys
    h2 = h.copy()
    h2[1, 2] += 1
    assert stamp_history(["x", "y"], h2, START).days[2] != a.days[2]



def test_plans_in_separate_processes_share_the_cache_folder(fits, tmp_path):
    store = _Store()
    first = _planner(store, TODAY, RestockModelCache(refit_days=7, directory=tmp_path)).plan()
    assert len(fits) == 1
    # another process: a new, empty cache over the same folder
    other = RestockModelCache(refit_days=7, directory=tmp_path)
    again = _planner(store, TODAY, other).plan()
    assert len(fits) == 1 and other.stats()["disk_hits"] == 2  # the model and the group's levels
    assert _numbers(again) == _numbers(first)
    # the next day, a third process reads the model and replays its own history
    third = RestockModelCache(refit_days=7, directory=tmp_path)
    next_day = _planner(store, TODAY + timedelta(days=1), third).plan()
    assert len(fits) == 1 and third.stats()["disk_hits"] == 1 and third.stats()["level_misses"] == 1
    # the same plan as one process that kept the model in memory from the day before
    ref = RestockModelCache(refit_days=7)
    _planner(store, TODAY, ref).plan()
    assert _numbers(next_day) == _numbers(_planner(store, TODAY + timedelta(days=1), ref).plan())


def test_an_unreadable_cache_file_is_fitted_again(fits, tmp_path):
    store = _Store()
    _planner(store, TODAY, RestockModelCache(directory=tmp_path)).plan()
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) == 2  # the model and the group's levels, as in the test above
    for f in files:
        f.write_text("not a cache file")
    other = RestockModelCache(directory=tmp_path)
    _planner(store, TODAY, other).plan()
    assert len(fits) == 2 and other.stats()["disk_hits"] == 0


def test_a_saved_global_model_predicts_the_same_numbers():
    rng = np.random.default_rng(5)
    series = rng.poisson(np.exp(rng.normal(0.5, 1.0, (30, 1))), (30, 200)).astype(float)
    weekdays = [(START + timedelta(days=i)).weekday() for i in range(200)]
    model = restock_gbm.fit_global(series, weekdays, 8, first_day=START)
    back = restock_gbm.GlobalForecaster.from_text(model.to_text())
    recent, observed = series[:, -180:], np.full(30, 180.0)
    assert np.array_equal(model.predict(recent, observed, 3, TODAY), back.predict(recent, observed, 3, TODAY))
