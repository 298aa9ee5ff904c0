"""bench/forecast_interval_rules.py: its scorer is the backtest's, its zero-inflated NB keeps the mean, and its
choice follows the rule fixed before the run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopfloor.forecast.distribution import nb_quantiles

from .test_forecast_protocol import make_panel

_PATH = Path(__file__).resolve().parents[2] / "bench" / "forecast_interval_rules.py"
_spec = importlib.util.spec_from_file_location("forecast_interval_rules", _PATH)
rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rules)


def test_zero_inflated_quantiles_are_the_nb_ones_without_zero_mass_and_zero_below_the_mass():
    mean = np.array([0.5, 3.0, 12.0, 0.0])
    alpha = np.array([0.3, 0.1, 0.05, 0.2])
    np.testing.assert_array_equal(rules.zinb_quantiles(mean, alpha, np.zeros(4)), nb_quantiles(mean, alpha))
    q = rules.zinb_quantiles(mean, alpha, np.full(4, 0.3))
    # levels 0.005 .. 0.25 lie inside the 30 % zero mass; the upper band widens (the NB part has mean / 0.7)
    assert (q[:, :4] == 0).all()
    assert (q[:3, -1] >= nb_quantiles(mean, alpha)[:3, -1]).all()
    assert (q[3] == 0).all()


def test_the_mixture_keeps_the_point_forecasts_mean():
    from scipy import stats

    from shopfloor.forecast.distribution import nb_params

    mean, alpha, pi = 4.0, 0.2, 0.25
    n, p = nb_params(np.array([mean / (1 - pi)]), np.array([alpha]))
    assert (1 - pi) * stats.nbinom.mean(n[0], p[0]) == pytest.approx(mean)


def test_the_segment_scorer_scores_as_the_backtest_scores():
    from shopfloor.forecast.backtest import origin_forecasts, score_days
    from shopfloor.forecast.demand import ForecastConfig
    from shopfloor.forecast.frames import QUANTILE_COLUMNS, validate_history

    hist = validate_history(make_panel(n_days=200))
    cutoff = hist["ds"].max() - pd.Timedelta(days=20)
    train, actual, fcs = origin_forecasts(hist, cutoff, 14, ["wa28"], ForecastConfig(), baselines=False)
    fc = fcs["wa28"]

    class O:
        pass

    o = O()
    o.cutoff, o.train, o.actual = cutoff, train, actual
    for first, last in ((1, 7), (8, 14)):
        seg = rules.Segment(o, fc, first, last)
        wspl, cov, _ = seg.score(fc[list(QUANTILE_COLUMNS)].to_numpy())
        ref = score_days(fc, actual, train, cutoff, first, last)
        assert wspl == pytest.approx(ref["wspl"], rel=1e-12)
        assert cov == pytest.approx(ref["coverage_95"], rel=1e-12)


def _row(family, wspl, cmin, cmax, cov=95.0):
    return {"family": family, "scale": 1.0, "growth": 0.0, "wspl": wspl, "coverage_95": cov,
            "coverage_95_min": cmin, "coverage_95_max": cmax, "margin": min(cmin - 92, 98 - cmax),
            "spread": cmax - cmin}


def test_a_rule_replaces_the_shipped_one_only_with_half_a_point_more_margin_at_no_more_than_half_a_percent_wspl():
    shipped = _row("B", 1.0, 92.9, 97.1)
    small_gain = [shipped, _row("X", 0.99, 93.2, 96.9)]
    assert not rules.choose(small_gain, shipped)["replaces_shipped"]
    costly = [shipped, _row("X", 1.006, 94.0, 96.0)]
    out = rules.choose(costly, shipped)
    assert "X" not in out["family_picks"] and not out["replaces_shipped"]
    good = [shipped, _row("X", 1.004, 93.5, 96.5)]
    out = rules.choose(good, shipped)
    assert out["best"]["family"] == "X" and out["replaces_shipped"]
    off_mean = [shipped, _row("X", 0.9, 94.0, 96.0, cov=96.6)]
    assert "X" not in rules.choose(off_mean, shipped)["family_picks"]
