"""Rolling-origin backtests. Each window trains only on ``ds <= cutoff`` and is scored on the next ``horizon`` days.

The models get the information a real forecast has at the cutoff, no more: covariates known ahead (calendar flags
such as ``snap`` and ``event``) are passed for the horizon, and every covariate in ``BacktestSpec.carry_forward``
(``price`` by default: nobody knows next month's prices) is set to its last value known at the cutoff, never its
true future value (:func:`origin_future`).

Every run also scores two baselines with statsforecast's conformal intervals: ``SeasonalNaive(7)`` and
``AutoETS`` (season 7); their interval bounds are clipped at zero so they are judged as sensibly as possible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .demand import HORIZON_MEMBERS, ForecastConfig, forecast_demand, run_member
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
    #: Covariates not known ahead: over the horizon they take their last value known at the cutoff.
    carry_forward: tuple[str, ...] = ("price",)
    #: Explicit cutoffs (override ``windows`` and ``step``).
    cutoffs: tuple[pd.Timestamp, ...] | None = None


#: Days of history a backtest needs before its first origin (the cold-start threshold of the forecast pipeline).
MIN_TRAIN_DAYS = 28
#: Days the baselines' conformal intervals see at most (:func:`conformal_baselines` keeps each series' last 728).
CONFORMAL_MAX_DAYS = 728
#: Days AutoETS needs to fit before the earliest conformal calibration window (one weekly season).
CONFORMAL_FIT_DAYS = 7


def max_conformal_windows(train_days: int, horizon: int) -> int:
    """How many conformal calibration windows of ``horizon`` days a training history of ``train_days`` days
    allows: each window holds out ``horizon`` days, and AutoETS still needs :data:`CONFORMAL_FIT_DAYS` before the
    earliest one (statsforecast fails with an IndexError or "tiny datasets" otherwise)."""
    return max(0, (min(train_days, CONFORMAL_MAX_DAYS) - CONFORMAL_FIT_DAYS) // horizon)


def cutoffs_for(history: pd.DataFrame, spec: BacktestSpec) -> list[pd.Timestamp]:
    """Cutoffs so that the last window ends on the last day of history (or ``spec.cutoffs`` when given)."""
    if spec.cutoffs is not None:
        return sorted(pd.Timestamp(c) for c in spec.cutoffs)
    last = history[TIME].max()
    return [
        last - pd.Timedelta(days=spec.horizon + spec.step * (spec.windows - 1 - k)) for k in range(spec.windows)
    ]


def origin_future(
    history: pd.DataFrame, cutoff: pd.Timestamp, horizon: int, covariates: list[str],
    carry_forward: tuple[str, ...] = ("price",),
) -> pd.DataFrame:
    """The future-covariates frame a forecast made at ``cutoff`` can have: ``unique_id, ds`` + covariates for the
    ``horizon`` days after it. Covariates in ``carry_forward`` take each series' last non-missing value on or
    before the cutoff (missing when it never had one); the others (calendar flags) are taken as they are.

    ``history`` must be validated (sorted, gap-free)."""
    end = cutoff + pd.Timedelta(days=horizon)
    rows = history[(history[TIME] > cutoff) & (history[TIME] <= end)]
    future = rows[[ID, TIME, *covariates]].reset_index(drop=True)
    carried = [c for c in covariates if c in carry_forward]
    if carried:
        known = history[history[TIME] <= cutoff]
        last = known.groupby(ID, sort=False)[carried].last()  # groupby.last skips NaN: the last known value
        for col in carried:
            future[col] = future[ID].map(last[col]).astype("float32")
    return future


def point_baselines(train: pd.DataFrame, horizon: int, n_jobs: int = 1) -> dict[str, pd.DataFrame]:
    """The SeasonalNaive(7) point forecast (``unique_id, ds, mean``), without intervals: the cheap yardstick
    selection measures candidates against (so that every selection origin counts the same)."""
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    df = train[[ID, TIME, TARGET]].groupby(ID, sort=False).tail(728)
    raw = StatsForecast(models=[SeasonalNaive(season_length=7, alias="snaive")], freq="D").forecast(df=df, h=horizon)
    raw = raw.reset_index() if ID not in raw.columns else raw
    raw[ID] = raw[ID].astype(str)
    return {"snaive": raw[[ID, TIME]].assign(mean=raw["snaive"].clip(lower=0.0))}


def conformal_baselines(
    train: pd.DataFrame, horizon: int, n_windows: int, n_jobs: int = 1, *, intervals: str = "conformal",
) -> dict[str, pd.DataFrame]:
    """SeasonalNaive(7) and AutoETS forecasts with conformal intervals (``n_windows`` calibration windows, so
    ``n_windows + 1`` fits), or with each model's own intervals (``intervals="model"``: one fit), as nine-quantile
    frames."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive
    from statsforecast.utils import ConformalIntervals

    df = train[[ID, TIME, TARGET]].groupby(ID, sort=False).tail(728)
    # Conformal calibration needs (n_windows + 1) * horizon days; shorter series are left to the point forecast.
    conformal = ConformalIntervals(h=horizon, n_windows=n_windows) if intervals == "conformal" else None
    sf = StatsForecast(
        models=[
            SeasonalNaive(season_length=7, alias="snaive", prediction_intervals=conformal),
            AutoETS(season_length=7, alias="ets", prediction_intervals=conformal),
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


class MemberCache:
    """On-disk cache of per-origin member and baseline forecasts, so that scoring another ensemble, weighting or
    dispersion costs only its own fits. A key covers everything the forecast depends on: the cutoff, the horizon,
    the member, the model settings, the training data and the future covariates."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def fingerprint(*parts: Any) -> str:
        h = hashlib.sha256()
        for part in parts:
            if isinstance(part, pd.DataFrame):
                h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
                h.update(",".join(map(str, part.columns)).encode())
            else:
                h.update(repr(part).encode())
        return h.hexdigest()[:20]

    def get_or_run(self, key: str, run: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        path = self.directory / f"{key}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        frame = run()
        tmp = path.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        return frame


def origin_forecasts(
    hist: pd.DataFrame, cutoff: pd.Timestamp, horizon: int, names: list[str], cfg: ForecastConfig, *,
    carry_forward: tuple[str, ...] = ("price",), conformal_windows: int = 3, baselines: bool = True,
    baseline_intervals: bool | str = True, n_jobs: int = 1, cache: MemberCache | None = None,
    progress: Callable[[str], None] | None = None, configs: dict[str, ForecastConfig] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Forecast ``names`` (and the baselines) from one origin with what was known at ``cutoff``. ``configs``
    may give a name its own config (default ``cfg``); names share member forecasts whose model settings match.

    Returns ``(train, horizon_actuals, {name: quantile frame})``; baselines are named ``baseline:snaive`` and
    ``baseline:ets``, with conformal intervals (``baseline_intervals`` true or ``"conformal"``), the models' own
    intervals (``"model"``), or, when false, only the SeasonalNaive point forecast (:func:`point_baselines`).
    ``hist`` is a validated history."""
    covs = covariate_columns(hist)
    train = hist[hist[TIME] <= cutoff].reset_index(drop=True)
    end = cutoff + pd.Timedelta(days=horizon)
    actual = hist[(hist[TIME] > cutoff) & (hist[TIME] <= end)][[ID, TIME, TARGET]].reset_index(drop=True)
    future = origin_future(hist, cutoff, horizon, covs, carry_forward)
    data_key = MemberCache.fingerprint(train, future) if cache is not None else ""
    memo: dict[str, pd.DataFrame] = {}
    fits: dict = {}
    out: dict[str, pd.DataFrame] = {}
    if baselines:
        if progress:
            progress(f"origin {cutoff.date()}: baselines")

        kind = {True: "conformal", False: "point"}.get(baseline_intervals, baseline_intervals)

        def run_baselines() -> pd.DataFrame:
            if kind in ("conformal", "model"):
                frames = conformal_baselines(train, horizon, conformal_windows, n_jobs, intervals=kind)
            else:
                frames = point_baselines(train, horizon, n_jobs)
            return pd.concat([f.assign(baseline=b) for b, f in frames.items()], ignore_index=True)

        if cache is None:
            both = run_baselines()
        else:
            tag = f"conformal{conformal_windows}" if kind == "conformal" else kind
            key = MemberCache.fingerprint("baselines", horizon, tag, data_key)
            both = cache.get_or_run(f"{cutoff.date()}_baselines_{key}", run_baselines)
        for bname in both["baseline"].unique():
            frame = both[both["baseline"] == bname].drop(columns="baseline").reset_index(drop=True)
            out[f"baseline:{bname}"] = frame
        if "baseline:ets" in out:
            # The ``ets`` member is the AutoETS baseline's model on the same 728 days: reuse its point forecast.
            ets_point = out["baseline:ets"][[ID, TIME]].assign(ets=out["baseline:ets"]["mean"])
            memo[("ets", MemberCache.fingerprint(728))] = ets_point

    def shared(member, hist_, horizon_, future_, covs_, cfg_, *args):
        # Ensembles from one origin share each member's forecast (same training data, same cutoff, same model
        # settings), and the lgbm_direct* members share their direct models.
        if member == "ets":
            settings = MemberCache.fingerprint(cfg_.stats_max_days)
        elif member == "ets_nt":
            settings = MemberCache.fingerprint("ets_nt", cfg_.ets_nt_days)
        elif member in HORIZON_MEMBERS:
            settings = MemberCache.fingerprint(member, *getattr(cfg_, HORIZON_MEMBERS[member]).fingerprint_parts())
        elif member == "lgbm" or member.startswith("lgbm_direct"):
            settings = MemberCache.fingerprint(cfg_.lgbm)
        else:
            settings = MemberCache.fingerprint(cfg_.stats_max_days)
        if (member, settings) not in memo:
            def run() -> pd.DataFrame:
                return run_member(member, hist_, horizon_, future_, covs_, cfg_, *args,
                                  fits=fits.setdefault(settings, {}))

            if cache is None:
                memo[(member, settings)] = run()
            else:
                key = MemberCache.fingerprint("member", member, horizon, settings, data_key)
                memo[(member, settings)] = cache.get_or_run(f"{cutoff.date()}_{member}_{key}", run)
        return memo[(member, settings)]

    for name in names:
        if progress:
            progress(f"origin {cutoff.date()}: {name}")
        c = (configs or {}).get(name, cfg)
        out[name] = forecast_demand(train, horizon, future, model=name, config=c, n_jobs=n_jobs, runner=shared)
    return train, actual, out


def score_days(
    forecast: pd.DataFrame, actual: pd.DataFrame, train: pd.DataFrame, cutoff: pd.Timestamp, first: int, last: int,
) -> dict[str, Any]:
    """Scores of ``forecast`` on horizon days ``first..last`` after ``cutoff`` (1-based, inclusive)."""
    lo, hi = cutoff + pd.Timedelta(days=first - 1), cutoff + pd.Timedelta(days=last)
    test = actual[(actual[TIME] > lo) & (actual[TIME] <= hi)]
    return _finite_or_none(summarize(per_series_scores(forecast, test, train)))


def _finite_or_none(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores with NaN/inf as None, so the result is strict JSON: a score is undefined (NaN) when no series has a
    scale, e.g. every series is constant (all zeros) and RMSSE/SPL would divide by zero."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in scores.items()}


def backtest(
    history: pd.DataFrame, spec: BacktestSpec | None = None, *, models: tuple[str, ...] = ("auto",),
    config: ForecastConfig | None = None, n_jobs: int = 1, baselines: bool = True,
    progress: Callable[[str], None] | None = None, cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Rolling-origin cross-validation of ``models`` (+ the baselines). Returns a JSON-ready dict.

    ``result["models"][name]`` holds metrics averaged over windows (``rmsse, wrmsse, spl, wspl, coverage_50,
    coverage_95``); ``result["windows"]`` the per-window figures; ``result["targets"]`` the issue's targets for the
    first model against the baselines. Future covariates follow :func:`origin_future`. ``cache_dir`` keeps each
    origin's member and baseline forecasts on disk (see :class:`MemberCache`).
    """
    spec = spec or BacktestSpec()
    if not 1 <= spec.score_from <= spec.horizon:
        raise ValueError(f"score_from must be between 1 and the horizon ({spec.horizon}), got {spec.score_from}")
    cfg = config or ForecastConfig()
    hist = validate_history(history)
    cuts = cutoffs_for(hist, spec)
    first_day = hist[TIME].min()
    if cuts[0] < first_day + pd.Timedelta(days=MIN_TRAIN_DAYS - 1):
        span = (hist[TIME].max() - first_day).days + 1
        need = MIN_TRAIN_DAYS + spec.horizon + spec.step * (spec.windows - 1)
        raise ForecastInputError(
            f"history spans {span} days; {spec.windows} window(s) of horizon {spec.horizon} (step {spec.step}) need "
            f"at least {need}: {MIN_TRAIN_DAYS} days of training before the first origin. Use fewer windows, a "
            "shorter horizon or more history")
    if cuts[-1] + pd.Timedelta(days=spec.horizon) > hist[TIME].max():
        raise ForecastInputError(
            f"cutoff {cuts[-1].date()} + horizon {spec.horizon} runs past the last day of history "
            f"({hist[TIME].max().date()})")
    if baselines:
        train_days = (cuts[0] - first_day).days + 1
        allowed = max_conformal_windows(train_days, spec.horizon)
        if spec.conformal_windows > allowed:
            raise ForecastInputError(
                f"{spec.conformal_windows} calibration windows of {spec.horizon} days do not fit in the "
                f"{min(train_days, CONFORMAL_MAX_DAYS)} days of training before the first origin "
                f"({cuts[0].date()}); this history allows at most {allowed} (each window holds out "
                f"{spec.horizon} days and AutoETS needs {CONFORMAL_FIT_DAYS} before them)"
                + ("" if allowed >= 2 else ": use a shorter horizon, fewer windows or more history"),
                "conformal_windows")
    names = [cfg.default_model if m == "auto" else m for m in models]
    cache = MemberCache(cache_dir) if cache_dir is not None else None
    per_window: list[dict[str, Any]] = []
    for cutoff in cuts:
        train, actual, forecasts = origin_forecasts(
            hist, cutoff, spec.horizon, names, cfg, carry_forward=spec.carry_forward,
            conformal_windows=spec.conformal_windows, baselines=baselines, n_jobs=n_jobs, cache=cache,
            progress=progress)
        # Forecasts cover the whole horizon; only days score_from..horizon are scored.
        row: dict[str, Any] = {"cutoff": str(cutoff.date()), "scores": {
            name: score_days(fc, actual, train, cutoff, spec.score_from, spec.horizon) for name, fc in forecasts.items()
        }}
        per_window.append(row)
    model_names = list(per_window[0]["scores"]) if per_window else []
    averaged = {
        name: _mean_dicts([w["scores"][name] for w in per_window]) for name in model_names
    }
    result = {
        "spec": {"horizon": spec.horizon, "windows": len(cuts), "step": spec.step,
                 "conformal_windows": spec.conformal_windows, "score_from": spec.score_from,
                 "carry_forward": list(spec.carry_forward)},
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
        vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
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
