"""Rolling-origin backtests. Each window trains only on ``ds <= cutoff`` and is scored on the next ``horizon`` days;
future covariates (never ``y``) are passed for the horizon, exactly as at forecast time.

Every run also scores two baselines with statsforecast's conformal intervals: ``SeasonalNaive(7)`` and
``AutoETS`` (season 7); their interval bounds are clipped at zero so they are judged as sensibly as possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from .demand import ForecastConfig, forecast_demand, run_member
from .frames import ID, QUANTILE_COLUMNS, TARGET, TIME, ForecastInputError, covariate_columns, validate_history
from .metrics import per_series_scores, summarize

BASELINES = ("snaive", "ets")
_LEVELS = (50, 67, 95, 99)
# quantile -> (level, side) of a symmetric conformal interval; the median is the point forecast.
_Q_FROM_LEVEL = {
    "q_0.005": (99, "lo"), "q_0.025": (95, "lo"), "q_0.165": (67, "lo"), "q_0.25": (50, "lo"),
    "q_0.75": (50, "hi"), "q_0.835": (67, "hi"), "q_0.975": (95, "hi"), "q_0.995": (99, "hi"),
}


@dataclass(frozen=True)
class BacktestSpec:
    """horizon, number of windows, step between cutoffs (days), conformal windows for the baselines, and the first
    horizon day scored (``score_from=29`` with ``horizon=56`` scores days 29..56 only, as the held-back check does).
    """

    horizon: int = 28
    windows: int = 3
    step: int = 28
    conformal_windows: int = 3
    score_from: int = 1


#: Days of history a backtest needs before its first origin (the cold-start threshold of the forecast pipeline).
MIN_TRAIN_DAYS = 28


def cutoffs_for(history: pd.DataFrame, spec: BacktestSpec) -> list[pd.Timestamp]:
    """Cutoffs so that the last window ends on the last day of history."""
    last = history[TIME].max()
    return [
        last - pd.Timedelta(days=spec.horizon + spec.step * (spec.windows - 1 - k)) for k in range(spec.windows)
    ]


def conformal_baselines(train: pd.DataFrame, horizon: int, n_windows: int, n_jobs: int = 1) -> dict[str, pd.DataFrame]:
    """SeasonalNaive(7) and AutoETS forecasts with conformal intervals, as nine-quantile frames."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive
    from statsforecast.utils import ConformalIntervals

    df = train[[ID, TIME, TARGET]].groupby(ID, sort=False).tail(728)
    # Conformal calibration needs (n_windows + 1) * horizon days; shorter series are left to the point forecast.
    intervals = ConformalIntervals(h=horizon, n_windows=n_windows)
    sf = StatsForecast(
        models=[
            SeasonalNaive(season_length=7, alias="snaive", prediction_intervals=intervals),
            AutoETS(season_length=7, alias="ets", prediction_intervals=intervals),
        ],
        freq="D",
        n_jobs=n_jobs,
    )
    raw = sf.forecast(df=df, h=horizon, level=list(_LEVELS))
    raw = raw.reset_index() if ID not in raw.columns else raw
    raw[ID] = raw[ID].astype(str)
    out = {}
    for name in BASELINES:
        frame = raw[[ID, TIME]].copy()
        frame["mean"] = raw[name].clip(lower=0.0)
        for col, (level, side) in _Q_FROM_LEVEL.items():
            frame[col] = raw[f"{name}-{side}-{level}"]
        frame["q_0.5"] = raw[name]
        q = np.sort(np.maximum(frame[list(QUANTILE_COLUMNS)].to_numpy(dtype="float64"), 0.0), axis=1)
        frame[list(QUANTILE_COLUMNS)] = np.nan_to_num(q, nan=0.0)
        out[name] = frame
    return out


def backtest(
    history: pd.DataFrame, spec: BacktestSpec | None = None, *, models: tuple[str, ...] = ("auto",),
    config: ForecastConfig | None = None, n_jobs: int = 1, baselines: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Rolling-origin cross-validation of ``models`` (+ the baselines). Returns a JSON-ready dict.

    ``result["models"][name]`` holds metrics averaged over windows (``rmsse, wrmsse, spl, wspl, coverage_50,
    coverage_95``); ``result["windows"]`` the per-window figures; ``result["targets"]`` the issue's targets for the
    first model against the baselines.
    """
    spec = spec or BacktestSpec()
    if not 1 <= spec.score_from <= spec.horizon:
        raise ValueError(f"score_from must be between 1 and the horizon ({spec.horizon}), got {spec.score_from}")
    cfg = config or ForecastConfig()
    hist = validate_history(history)
    covs = covariate_columns(hist)
    cuts = cutoffs_for(hist, spec)
    first_day = hist[TIME].min()
    if cuts[0] < first_day + pd.Timedelta(days=MIN_TRAIN_DAYS - 1):
        span = (hist[TIME].max() - first_day).days + 1
        need = MIN_TRAIN_DAYS + spec.horizon + spec.step * (spec.windows - 1)
        raise ForecastInputError(
            f"history spans {span} days; {spec.windows} window(s) of horizon {spec.horizon} (step {spec.step}) need "
            f"at least {need}: {MIN_TRAIN_DAYS} days of training before the first origin. Use fewer windows, a "
            "shorter horizon or more history")
    names = [cfg.default_model if m == "auto" else m for m in models]
    per_window: list[dict[str, Any]] = []
    for k, cutoff in enumerate(cuts):
        train = hist[hist[TIME] <= cutoff]
        end = cutoff + pd.Timedelta(days=spec.horizon)
        horizon_rows = hist[(hist[TIME] > cutoff) & (hist[TIME] <= end)]
        future = horizon_rows[[ID, TIME, *covs]]
        # Forecasts cover the whole horizon; only days score_from..horizon are scored.
        test = horizon_rows[horizon_rows[TIME] > cutoff + pd.Timedelta(days=spec.score_from - 1)]
        row: dict[str, Any] = {"cutoff": str(cutoff.date()), "scores": {}}
        memo: dict[str, pd.DataFrame] = {}
        fits: dict = {}

        def shared(member, *args, _memo=memo, _fits=fits):
            # Ensembles in one window share each member's forecast (same training data, same cutoff), and the
            # lgbm_direct* members share their direct models.
            if member not in _memo:
                _memo[member] = run_member(member, *args, fits=_fits)
            return _memo[member]

        for name in names:
            if progress:
                progress(f"window {k + 1}/{len(cuts)}: {name}")
            fc = forecast_demand(train, spec.horizon, future, model=name, config=cfg, n_jobs=n_jobs, runner=shared)
            row["scores"][name] = summarize(per_series_scores(fc, test, train))
        if baselines:
            if progress:
                progress(f"window {k + 1}/{len(cuts)}: baselines")
            for bname, fc in conformal_baselines(train, spec.horizon, spec.conformal_windows, n_jobs).items():
                row["scores"][f"baseline:{bname}"] = summarize(per_series_scores(fc, test, train))
        per_window.append(row)
    model_names = list(per_window[0]["scores"]) if per_window else []
    averaged = {
        name: _mean_dicts([w["scores"][name] for w in per_window]) for name in model_names
    }
    result = {
        "spec": {"horizon": spec.horizon, "windows": spec.windows, "step": spec.step,
                 "conformal_windows": spec.conformal_windows, "score_from": spec.score_from},
        "cutoffs": [w["cutoff"] for w in per_window],
        "n_series": int(hist[ID].nunique()),
        "models": averaged,
        "windows": per_window,
    }
    if baselines and names:
        result["targets"] = target_report(averaged, names[0])
    return result


def _mean_dicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rows[0]:
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


def _improvement(ours: float | None, base: float | None) -> float | None:
    if ours is None or base is None or base == 0:
        return None
    return float(100.0 * (1.0 - ours / base))


def target_report(models: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The issue's targets: wRMSSE >= 5 % below AutoETS and >= 20 % below SeasonalNaive, SPL >= 10 % below
    conformal AutoETS, 95 % coverage within 3 points of 95."""
    ours, ets, sn = models[name], models["baseline:ets"], models["baseline:snaive"]
    metric = "wrmsse" if ours.get("wrmsse") is not None else "rmsse"
    vs_ets = _improvement(ours[metric], ets[metric])
    vs_sn = _improvement(ours[metric], sn[metric])
    spl = _improvement(ours.get("spl"), ets.get("spl"))
    wspl = _improvement(ours.get("wspl"), ets.get("wspl"))
    cov = ours.get("coverage_95")
    return {
        "model": name,
        "accuracy_metric": metric,
        f"{metric}_pct_below_ets": vs_ets,
        f"{metric}_pct_below_snaive": vs_sn,
        "spl_pct_below_conformal_ets": spl,
        "wspl_pct_below_conformal_ets": wspl,
        "coverage_95": cov,
        "met": {
            "accuracy_vs_ets_5pct": vs_ets is not None and vs_ets >= 5.0,
            "accuracy_vs_snaive_20pct": vs_sn is not None and vs_sn >= 20.0,
            "spl_vs_conformal_ets_10pct": spl is not None and spl >= 10.0,
            "coverage_95_within_3pts": cov is not None and abs(cov - 95.0) <= 3.0,
        },
    }
