"""Synthetic flash crowds and the multi-trace protocol: selection sees only its traces, every row is labelled."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.forecast.flash_crowds import (
    FlashCrowdError,
    FlashCrowdSpec,
    inject_flash_crowds,
    stretched_daily_cycle,
)
from shopfloor.planning.capacity import PredictiveConfig
from shopfloor.planning import capacity_protocol as protocol
from shopfloor.planning.capacity_protocol import build_cases, run_protocol, select_config

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
runner = CliRunner()


def _daily(days: int, base: float = 60.0, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 1440)
    return rng.poisson(base * (1.0 + 0.8 * np.sin(2 * np.pi * (t % 1440) / 1440 - np.pi / 2))).astype(float)


# --- the generator ------------------------------------------------------------------------------------------------


def test_flash_crowds_are_reproducible_from_the_seed_and_differ_between_seeds():
    values = _daily(5)
    a, b, c = (inject_flash_crowds(values, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.values, b.values) and a.crowds == b.crowds
    assert not np.array_equal(a.values, c.values)


def test_every_crowd_keeps_to_the_documented_shape():
    spec = FlashCrowdSpec(irregular_per_day=3.0, recurring_slots=2, recurring_probability=1.0)
    inj = inject_flash_crowds(_daily(6), seed=2, spec=spec)
    assert inj.crowds
    for crowd in inj.crowds:
        assert 3.0 <= crowd.multiplier <= 10.0 and 1 <= crowd.ramp <= 5 and 30 <= crowd.duration <= 120
        prof = crowd.profile()
        assert prof[crowd.ramp - 1] == pytest.approx(crowd.multiplier)  # full height once the ramp is over
        assert prof.max() == pytest.approx(crowd.multiplier) and len(prof) == crowd.end - crowd.start


def test_recurring_crowds_start_at_the_same_clock_time_every_day_within_the_jitter():
    spec = FlashCrowdSpec(irregular_per_day=0.0, recurring_slots=1, recurring_probability=1.0)
    inj = inject_flash_crowds(_daily(6), seed=4, spec=spec)
    clocks = [c.start % 1440 for c in inj.crowds]
    assert len(clocks) >= 5 and max(clocks) - min(clocks) <= 2 * spec.recurring_jitter_minutes
    assert {c.kind for c in inj.crowds} == {"recurring"}


def test_episodes_come_back_on_consecutive_days_at_about_the_same_clock_time():
    spec = FlashCrowdSpec(irregular_per_day=0.0, recurring_slots=0, episodes_per_week=3.0, episode_days=(2, 4),
                          episode_jitter_minutes=3)
    inj = inject_flash_crowds(_daily(21), seed=6, spec=spec)
    assert inj.crowds and {c.kind for c in inj.crowds} == {"episode"}
    starts = sorted(c.start for c in inj.crowds)
    # Every episode day has a neighbour one day before or after, at the same clock time within twice the jitter.
    for s in starts:
        assert any(abs(abs(s - o) - 1440) <= 6 for o in starts if o != s)
    assert inj.summary()["episode"] == len(inj.crowds)


def test_a_spec_without_episodes_draws_no_episode():
    inj = inject_flash_crowds(_daily(10), seed=3)
    assert inj.crowds and all(c.kind != "episode" for c in inj.crowds)


def test_crowds_only_add_traffic_and_only_where_the_mask_says():
    values = _daily(4)
    inj = inject_flash_crowds(values, seed=5)
    assert (inj.values >= values).all()
    assert (inj.values[~inj.mask] == values[~inj.mask]).all()
    assert inj.values[inj.mask].sum() > 2 * values[inj.mask].sum()


@pytest.mark.parametrize(
    "spec, field",
    [
        (FlashCrowdSpec(multiplier=(0.5, 2.0)), "multiplier"),
        (FlashCrowdSpec(ramp_minutes=(0, 5)), "ramp_minutes"),
        (FlashCrowdSpec(recurring_probability=1.5), "recurring_probability"),
        (FlashCrowdSpec(irregular_per_day=-1.0), "irregular_per_day"),
        (FlashCrowdSpec(episodes_per_week=-1.0), "episodes_per_week"),
        (FlashCrowdSpec(episode_days=(3, 2)), "episode_days"),
        (FlashCrowdSpec(episode_jitter_minutes=-1), "episode_jitter_minutes"),
    ],
)
def test_a_bad_generator_setting_is_refused_naming_it(spec, field):
    with pytest.raises(FlashCrowdError) as err:
        inject_flash_crowds(_daily(2), seed=1, spec=spec)
    assert err.value.field == field


# --- the protocol -------------------------------------------------------------------------------------------------


def _cases():
    traces = [("alpha", _daily(3, seed=1), T0), ("beta", _daily(3, base=30, seed=2), T0)]
    return build_cases(traces, crowd_seeds=[1, 2])


def test_selection_replays_only_the_selection_traces_and_the_first_crowd_seed(monkeypatch):
    seen: list[str] = []
    real = protocol.replay_case

    def spy(case, config, **kw):
        seen.append(case.name)
        return real(case, config, **kw)

    monkeypatch.setattr(protocol, "replay_case", spy)
    candidates = {"a": PredictiveConfig(), "b": PredictiveConfig(scale_in_window=10)}
    result = run_protocol(_cases(), lag=10, select_on=["alpha"], candidates=candidates)
    selection_calls = seen[: 2 * 2]  # two candidates x two selection cases, before any report
    assert set(selection_calls) == {"alpha", "alpha+crowds(seed=1)"}
    labels = {r["trace"]: r["sample"] for r in result["rows"]}
    assert labels == {
        "alpha": "in-sample",
        "alpha+crowds(seed=1)": "in-sample",
        "alpha+crowds(seed=2)": "out-of-sample",
        "beta": "out-of-sample",
        "beta+crowds(seed=1)": "out-of-sample",
        "beta+crowds(seed=2)": "out-of-sample",
    }
    assert result["selection"]["cases"] == ["alpha", "alpha+crowds(seed=1)"]


def test_the_chosen_configuration_is_the_one_closest_to_both_targets_on_the_selection_cases():
    cases = [c for c in _cases() if c.trace == "alpha"]
    # A hugely padded configuration has fewer violations but breaks the cost bound by far: it must not win.
    candidates = {"plain": PredictiveConfig(), "padded": PredictiveConfig(headroom=3.0)}
    name, _cfg, selection = select_config(cases, lag=10, candidates=candidates)
    assert selection.scores["padded"]["worst_replica_minutes_ratio"] > 1.10
    assert selection.scores["plain"]["target_distance"] < selection.scores["padded"]["target_distance"]
    assert name == "plain"


def test_every_row_carries_its_own_reactive_baseline_and_ratios():
    cases = _cases()[:2]
    result = run_protocol(cases, lag=10)
    assert [row["trace"] for row in result["rows"]] == [c.name for c in cases]  # one row per case, none left out
    for row in result["rows"]:
        assert row["violation_ratio"] == pytest.approx(
            row["predictive_violation_minutes"] / row["reactive_violation_minutes"], abs=1e-4
        )
        assert row["capacity_per_replica"] == protocol.default_capacity(
            next(c.values for c in _cases() if c.name == row["trace"])
        )


def test_every_row_carries_the_seasonal_ratio_heuristic_replayed_on_the_same_case():
    cases = _cases()[:2]
    result = run_protocol(cases, lag=10)
    assert [row["trace"] for row in result["rows"]] == [c.name for c in cases]  # one row per case, none left out
    for row in result["rows"]:
        assert row["heuristic_violation_ratio"] == pytest.approx(
            row["heuristic_violation_minutes"] / row["reactive_violation_minutes"], abs=1e-4
        )
        assert row["heuristic_replica_minutes"] > 0


def test_without_selection_the_traces_the_defaults_were_tuned_on_are_labelled_in_sample():
    traces = [("nasa_like", _daily(2, seed=1), T0), ("fresh", _daily(2, seed=2), T0)]
    result = run_protocol(build_cases(traces, crowd_seeds=[1, 2]), lag=10)
    labels = {r["trace"]: r["sample"] for r in result["rows"]}
    assert labels["nasa_like"] == "in-sample" and labels["nasa_like+crowds(seed=1)"] == "in-sample"
    assert labels["nasa_like+crowds(seed=2)"] == "out-of-sample" and labels["fresh"] == "out-of-sample"


# --- the CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture()
def two_traces(tmp_path):
    paths = []
    for name, seed in (("shop_a", 1), ("shop_b", 2)):
        idx = pd.date_range("2026-01-01", periods=2 * 1440, freq="min")
        frame = pd.DataFrame({"minute": idx.strftime("%Y-%m-%d %H:%M:%S"), "count": _daily(2, seed=seed)})
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_backtest_prints_one_row_per_trace_and_crowd_seed(two_traces):
    args = ["capacity", "backtest", "--json", "--flash-crowds", "1"]
    for p in two_traces:
        args += ["--trace", str(p)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert [r["trace"] for r in body["rows"]] == ["shop_a", "shop_a+crowds(seed=1)", "shop_b",
                                                  "shop_b+crowds(seed=1)"]
    assert all(r["sample"] == "out-of-sample" for r in body["rows"])
    assert all("heuristic_violation_ratio" in r and "heuristic_replica_minutes_ratio" in r for r in body["rows"])


def test_the_backtest_table_shows_the_heuristic_next_to_the_planner(two_traces, monkeypatch):
    from shopfloor.cli import output

    # The CLI's console is made at import, so its width (80 without a terminal) is set here, as a wide one would be.
    monkeypatch.setattr(output.console, "width", 250)
    args = ["capacity", "backtest", "--flash-crowds", "1"]
    for p in two_traces:
        args += ["--trace", str(p)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "heuristic viol. ratio" in res.stdout and "heuristic replica-min ratio" in res.stdout


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--flash-crowds", "one"], "--flash-crowds"),
        (["--crowd-calendar"], "--crowd-calendar"),
        (["--select-on", "nothing-matches"], "--select-on"),
        (["--tz", "UTC", "--tz", "UTC", "--tz", "UTC"], "--tz"),
    ],
)
def test_bad_multi_trace_options_are_one_line_errors_naming_the_option(two_traces, extra, needle):
    args = ["capacity", "backtest", "--trace", str(two_traces[0]), "--trace", str(two_traces[1])] + extra
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and needle in res.output and "Traceback" not in res.output


# --- the stand-in for a long trace with a deep daily cycle ----------------------------------------------------------


def test_a_stretched_daily_cycle_is_reproducible_and_as_long_as_asked():
    week = _daily(14)
    a = stretched_daily_cycle(week, days=21, seed=7)
    assert len(a) == 21 * 1440
    assert np.array_equal(a, stretched_daily_cycle(week, days=21, seed=7))
    assert not np.array_equal(a, stretched_daily_cycle(week, days=21, seed=8))


def test_a_higher_quiet_power_deepens_the_quiet_hours_relative_to_the_peak():
    week = _daily(14)

    def trough_over_peak(values: np.ndarray) -> float:
        by_clock = values.reshape(-1, 1440).mean(axis=0)
        return by_clock.min() / by_clock.max()

    plain = trough_over_peak(stretched_daily_cycle(week, days=28, seed=1, quiet_power=1.0))
    deep = trough_over_peak(stretched_daily_cycle(week, days=28, seed=1, quiet_power=2.0))
    assert deep < 0.6 * plain


def test_the_weekend_shape_is_taken_from_the_weekend_days_and_laid_on_weekend_days():
    week = _daily(14)
    week[np.isin(np.arange(len(week)) // 1440 % 7, (5, 6))] *= 0.0  # an empty weekend
    out = stretched_daily_cycle(week, days=14, seed=2).reshape(14, 1440).sum(axis=1)
    assert (out[[5, 6, 12, 13]] == 0).all() and (out[[0, 1, 2, 3, 4]] > 0).all()


@pytest.mark.parametrize(
    "kwargs,field",
    [({"days": 0}, "days"), ({"quiet_power": 0.0}, "quiet_power"), ({"values": np.ones(100)}, "values")],
)
def test_a_bad_stretch_setting_is_refused_naming_it(kwargs, field):
    args = {"values": _daily(7), "days": 7, "seed": 1, **kwargs}
    values = args.pop("values")
    with pytest.raises(FlashCrowdError) as err:
        stretched_daily_cycle(values, **args)
    assert err.value.field == field


def test_the_previous_default_candidates_keep_their_own_settings_when_the_defaults_move():
    from shopfloor.planning.capacity_protocol import CANDIDATES

    for name in ("echo2-w5-trim3", "echo2-w5-trim3-guard"):
        cfg = CANDIDATES[name]
        assert cfg.burst_memory_minutes == 0 and cfg.floor_utilization == 0.0 and not cfg.boot_aware
    # The burst memory enters only the candidates named for it.
    assert [n for n, c in CANDIDATES.items() if c.burst_memory_minutes > 0] == [
        n for n in CANDIDATES if "burst" in n
    ]
