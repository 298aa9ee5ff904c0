"""The forecasting pipeline: validate, split cold/warm series, run the point model with per-series fallback,
attach a negative-binomial distribution, and emit the mean plus nine quantiles."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import models as _models
from .distribution import DemandDistribution, DispersionConfig, estimate_dispersion
from .horizon_lgbm import HorizonLGBMConfig, horizon_lgbm_forecast
from .frames import (
    ID,
    TIME,
    ForecastInputError,
    covariate_columns,
    horizon_dates,
    validate_future,
    validate_history,
)

log = logging.getLogger(__name__)

#: What ``model="auto"`` means: written by ``shopfloor forecast backtest --select-before DATE --write-defaults``,
#: which chooses it on backtest origins whose scored days all end before DATE (docs/benchmarks/forecast.md).
DEFAULTS_PATH = Path(__file__).with_name("default_selection.json")
DEFAULTS_VERSION = 4


@dataclass(frozen=True)
class DefaultSelection:
    """The selected default: a (weighted) model spec and the NB dispersion scale, with the date before which every
    origin it was chosen on ended. Figures on later origins are out-of-sample for it; on earlier ones, in-sample."""

    model: str
    dispersion_scale: float
    select_before: str
    version: int = DEFAULTS_VERSION
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Relative growth of the NB dispersion per 28 horizon days (:class:`DispersionConfig.growth`).
    dispersion_growth: float = DispersionConfig.growth
    #: A dispersion multiplier per horizon week, replacing the growth (:class:`DispersionConfig.week_scales`).
    dispersion_week_scales: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"version": self.version, "select_before": self.select_before, "model": self.model,
               "dispersion_scale": self.dispersion_scale, "dispersion_growth": self.dispersion_growth}
        if self.dispersion_week_scales is not None:
            out["dispersion_week_scales"] = list(self.dispersion_week_scales)
        return {**out, **self.details}

    def dispersion_config(self, base: DispersionConfig | None = None) -> DispersionConfig:
        """``base`` (default settings when omitted) with this selection's dispersion scale, growth and (when set)
        per-week scales."""
        return replace(base or DispersionConfig(), scale=self.dispersion_scale, growth=self.dispersion_growth,
                       week_scales=self.dispersion_week_scales)


def load_default_selection(path: str | Path | None = None) -> DefaultSelection:
    """Read a defaults file (the packaged one unless ``path`` is given)."""
    raw = json.loads(Path(path or DEFAULTS_PATH).read_text())
    fields = ("version", "select_before", "model", "dispersion_scale", "dispersion_growth", "dispersion_week_scales")
    details = {k: v for k, v in raw.items() if k not in fields}
    weeks = raw.get("dispersion_week_scales")
    sel = DefaultSelection(model=str(raw["model"]), dispersion_scale=float(raw["dispersion_scale"]),
                           select_before=str(raw["select_before"]), version=int(raw.get("version", 0)),
                           details=details,
                           dispersion_growth=float(raw.get("dispersion_growth", DispersionConfig.growth)),
                           dispersion_week_scales=tuple(float(w) for w in weeks) if weeks is not None else None)
    sel.dispersion_config()  # invalid week scales fail here
    _models.parse_spec(sel.model)  # a broken file fails here, naming the model
    return sel


#: Settings of the ``lgbm_rel`` member: level-normalised, origins from the last two years, three bags. At most 450 k
#: training rows per bag: no series of the 280-series M5 panel reaches that cap (its forecasts are identical to a
#: 1 M cap), and on 30,490 series the three fits train on 1.35 M rows in all instead of 3 M.
REL_CONFIG = HorizonLGBMConfig(normalise=True, origin_days=728, draws_per_origin_day=2, n_estimators=300, bags=3,
                               max_rows=450_000,
                               min_child_samples=200)

#: Settings of the ``lgbm_rel_recent`` member: ``lgbm_rel`` with the short-term demand features.
REL_RECENT_CONFIG = replace(REL_CONFIG, recent=True)

#: The store in an M5-style id (``FOODS_3_586_CA_1`` -> ``CA_1``) or a trailing letters+digits token (``..._S3``).
STORE_PATTERN = r"[A-Za-z]+_?\d+$"
#: The department in an M5-style id (``FOODS_3_586_CA_1`` -> ``FOODS_3``).
DEPT_PATTERN = r"^[A-Za-z]+_\d+(?=_)"

#: Settings of the ``lgbm_tw_store`` member: raw units (Tweedie 1.1), origins from the last two years as
#: ``lgbm_rel``, one model per store; the 1.35 M training-row cap (``lgbm_rel``'s 3 x 450 k) is shared by the stores.
TW_STORE_CONFIG = HorizonLGBMConfig(origin_days=728, draws_per_origin_day=2, n_estimators=300, bags=1,
                                    max_rows=1_350_000, min_child_samples=100, group_pattern=STORE_PATTERN)
#: ``lgbm_tw_dept``: the same, one model per department.
TW_DEPT_CONFIG = replace(TW_STORE_CONFIG, group_pattern=DEPT_PATTERN)

#: The multi-horizon LightGBM members and their settings in :class:`ForecastConfig`.
HORIZON_MEMBERS = {"lgbm_mh": "mh", "lgbm_rel": "rel", "lgbm_rel_recent": "rel_recent",
                   "lgbm_tw_store": "tw_store", "lgbm_tw_dept": "tw_dept"}

DEFAULT_SELECTION = load_default_selection()
DEFAULT_MODEL = DEFAULT_SELECTION.model


@dataclass(frozen=True)
class ForecastConfig:
    """Forecasting policy. ``default_model`` is what ``model="auto"`` means.

    cold_start_days: series with fewer days of history than this are forecast by the cold-start rate model;
    cold_start_prior_days: pseudo-days of the group/global prior in that rate model;
    group_column: optional non-numeric history column (e.g. category) whose members share a cold-start prior;
    stats_max_days: history kept for the statistical models; ets_nt_days: for the ``ets_nt`` member (its fit cost
    grows with the days, and a level/season model needs little more than the last year).
    lgbm / mh / rel / rel_recent / tw_store / tw_dept: settings of the recursive ``lgbm`` (and ``lgbm_direct*``),
    ``lgbm_mh``, ``lgbm_rel``, ``lgbm_rel_recent``, ``lgbm_tw_store`` and ``lgbm_tw_dept`` members.
    """

    default_model: str = DEFAULT_MODEL
    cold_start_days: int = 28
    cold_start_prior_days: float = 14.0
    group_column: str | None = None
    stats_max_days: int = 728
    ets_nt_days: int = 364
    lgbm: _models.LGBMConfig = field(default_factory=_models.LGBMConfig)
    mh: HorizonLGBMConfig = field(default_factory=HorizonLGBMConfig)
    rel: HorizonLGBMConfig = field(default_factory=lambda: REL_CONFIG)
    rel_recent: HorizonLGBMConfig = field(default_factory=lambda: REL_RECENT_CONFIG)
    tw_store: HorizonLGBMConfig = field(default_factory=lambda: TW_STORE_CONFIG)
    tw_dept: HorizonLGBMConfig = field(default_factory=lambda: TW_DEPT_CONFIG)
    dispersion: DispersionConfig = field(default_factory=DEFAULT_SELECTION.dispersion_config)


def run_member(
    member: str, hist: pd.DataFrame, horizon: int, future: pd.DataFrame | None, covs: list[str],
    cfg: ForecastConfig, n_jobs: int, dask_client: Any, fits: dict[tuple[int, int], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One ensemble member's forecast ``unique_id, ds, <member>``. ``fits`` (``(minimum lag, days) -> forecast``)
    shares the direct LightGBM models between the ``lgbm_direct*`` members of one ensemble (same history), so each
    is trained once."""
    if member == "lgbm":
        return _models.lgbm_forecast(hist, horizon, future, covs, config=cfg.lgbm, n_jobs=n_jobs,
                                     dask_client=dask_client)
    if member in HORIZON_MEMBERS:
        return horizon_lgbm_forecast(hist, horizon, future, covs, config=getattr(cfg, HORIZON_MEMBERS[member]),
                                     n_jobs=n_jobs, name=member, dask_client=dask_client)
    chain = _models.direct_chain(member, cfg.lgbm)
    if chain:
        return _direct_chain_forecast(member, chain, hist, horizon, future, covs, cfg, n_jobs, fits, dask_client)
    max_days = cfg.ets_nt_days if member == "ets_nt" else cfg.stats_max_days
    return _models.stats_forecast(hist, horizon, [member], n_jobs=n_jobs, max_days=max_days, dask_client=dask_client)


def _direct_chain_forecast(
    member: str, chain: list[int], hist: pd.DataFrame, horizon: int, future: pd.DataFrame | None, covs: list[str],
    cfg: ForecastConfig, n_jobs: int, fits: dict[tuple[int, int], pd.DataFrame] | None, dask_client: Any = None,
) -> pd.DataFrame:
    """Day ``k`` from the direct model with the smallest minimum lag >= ``k`` (beyond the chain: its last model)."""
    fits = {} if fits is None else fits
    grid = horizon_dates(hist, horizon)
    step = grid.groupby(ID, sort=False).cumcount().to_numpy() + 1
    values = np.full(len(grid), np.nan)
    lower = 0
    for i, lag in enumerate(chain):
        if lower >= horizon:
            break
        last = i == len(chain) - 1
        days = horizon if last else min(lag, horizon)  # a direct model is never asked beyond its minimum lag
        key = (lag, days)
        if key not in fits:
            fits[key] = _models.lgbm_forecast(
                hist, days, future, covs, config=replace(cfg.lgbm, min_lag=lag), n_jobs=n_jobs, name="direct",
                dask_client=dask_client)
        use = (step > lower) & (step <= days)
        got = grid.loc[use, [ID, TIME]].merge(fits[key], on=[ID, TIME], how="left")["direct"].to_numpy()
        values[use] = got
        lower = days
    grid[member] = values
    return grid


def point_forecast(
    hist: pd.DataFrame, horizon: int, spec: str, *, future: pd.DataFrame | None = None,
    covariates: list[str] | None = None, config: ForecastConfig | None = None, n_jobs: int = 1,
    dask_client: Any = None, runner: Callable[..., pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """Point forecast ``unique_id, ds, mean`` for a validated history, with per-series fallback.

    Each ensemble member runs on its own; a member that raises is replaced for every series, and a member's
    non-finite values are replaced for that series, by the trailing 28-day mean. Returns the frame, a
    ``{unique_id: reason}`` map of the fallbacks taken, and ``{member: error}`` for the members that raised.
    """
    cfg = config or ForecastConfig()
    weighted = _models.parse_weighted_spec(spec)
    members = [m for m, _ in weighted]
    weights = np.array([w for _, w in weighted], dtype="float64")
    run = runner or partial(run_member, fits={})
    grid = horizon_dates(hist, horizon)
    fallback = _models.trailing_mean_forecast(hist, horizon)["fallback"].to_numpy()
    fallbacks: dict[str, str] = {}
    failed: dict[str, str] = {}
    columns = []
    for member in members:
        try:
            out = run(member, hist, horizon, future, covariates or [], cfg, n_jobs, dask_client)
            vals = grid.merge(out[[ID, TIME, member]], on=[ID, TIME], how="left")[member].to_numpy(dtype="float64")
        except Exception as exc:  # noqa: BLE001 - any model failure falls back; the reason is reported
            log.warning("model %s failed for all series, using fallback: %s", member, exc)
            failed[member] = f"{type(exc).__name__}: {exc}"[:200]
            for uid in grid[ID].unique():
                fallbacks.setdefault(uid, f"{member} failed: {type(exc).__name__}: {exc}"[:200])
            vals = fallback.copy()
        bad = ~np.isfinite(vals)
        if bad.any():
            for uid in grid.loc[bad, ID].unique():
                fallbacks.setdefault(uid, f"{member} returned non-finite values")
            vals = np.where(bad, fallback, vals)
        columns.append(np.maximum(vals, 0.0))
    grid["mean"] = np.average(columns, axis=0, weights=weights)
    return grid, fallbacks, failed


def forecast_distribution(
    history: pd.DataFrame, horizon: int, future: pd.DataFrame | None = None, *, model: str = "auto",
    config: ForecastConfig | None = None, n_jobs: int = 1, dask_client: Any = None,
    runner: Callable[..., pd.DataFrame] | None = None,
) -> DemandDistribution:
    """Probabilistic daily demand forecast: per ``unique_id, ds`` a mean and a negative-binomial dispersion.

    Parameters
    ----------
    history: long frame ``unique_id, ds, y`` (+ numeric covariates), daily.
    horizon: days ahead (any positive number; models are recursive, so 56 works as well as 28).
    future: ``unique_id, ds`` + covariate values over the horizon. Covariates missing from it are not used.
    model: ``"auto"`` (the backtested default), a name from :data:`shopfloor.forecast.MODEL_NAMES`, or an
        ensemble like ``"lgbm+ets"``.
    dask_client: a ``distributed.Client``; every member then runs on it: the statistical ones through
        statsforecast's fugue backend, the LightGBMs through mlforecast's distributed training.
    runner: advanced hook replacing how one ensemble member is run (see :func:`point_forecast`); backtests use
        it to share member forecasts between ensembles.

    Returns a :class:`DemandDistribution`; ``.quantile_frame()`` gives mean + quantiles, ``.sample_paths()`` and
    ``.lead_time_demand()`` serve restock planning.
    """
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ForecastInputError(f"horizon must be a positive integer, got {horizon!r}", "horizon")
    cfg = config or ForecastConfig()
    spec = cfg.default_model if model == "auto" else model
    try:
        _models.parse_spec(spec)
    except ValueError as exc:
        raise ForecastInputError(str(exc), "model") from None
    group_of = None
    if cfg.group_column and cfg.group_column in history.columns:
        g = history[[ID, cfg.group_column]].drop_duplicates(ID)
        group_of = dict(zip(g[ID].astype(str), g[cfg.group_column].astype(str)))
    d = cfg.dispersion
    lgbm_days = cfg.lgbm.train_days + max(_models.state_days(cfg.lgbm), _models.state_days(_models.direct_config(cfg.lgbm)))
    keep = max(cfg.stats_max_days, lgbm_days, d.window + d.level_window + d.lag, cfg.cold_start_days)
    for member, attr in HORIZON_MEMBERS.items():
        mcfg = getattr(cfg, attr)
        if member in _models.parse_spec(spec):
            keep = max(keep, mcfg.history_days + max(mcfg.max_horizon, int(horizon)))
    hist = validate_history(history, keep_days=keep)
    covs = covariate_columns(hist)
    fut = validate_future(future, covs) if future is not None else None

    n_obs = hist.groupby(ID, sort=True).size()
    cold_ids = n_obs.index[n_obs < cfg.cold_start_days]
    if len(cold_ids):
        is_cold = hist[ID].isin(cold_ids)
        warm, cold = hist[~is_cold].reset_index(drop=True), hist[is_cold]
        del is_cold
    else:  # the usual case: no copy of the panel (on 30,490 series it is GBs, held while the models train)
        warm, cold = hist, hist.iloc[:0]

    parts, fallbacks, failed = [], {}, {}
    if not warm.empty:
        point, fallbacks, failed = point_forecast(
            warm, horizon, spec, future=fut, covariates=covs, config=cfg, n_jobs=n_jobs, dask_client=dask_client,
            runner=runner,
        )
        parts.append(point)
    if not cold.empty:
        parts.append(
            _models.cold_start_rate(
                cold, warm, horizon, prior_days=cfg.cold_start_prior_days, group_of=group_of
            )
        )
    frame = pd.concat(parts, ignore_index=True).sort_values([ID, TIME]).reset_index(drop=True)
    alpha = estimate_dispersion(hist, cfg.dispersion)
    step = frame.groupby(ID, sort=False).cumcount().to_numpy() + 1
    base = frame[ID].map(alpha).to_numpy(dtype="float64")
    frame["dispersion"] = base * cfg.dispersion.horizon_multiplier(step)
    frame["mean"] = frame["mean"].clip(lower=0.0)
    return DemandDistribution(frame=frame, model=spec, fallbacks=fallbacks, cold_start=[str(c) for c in cold_ids],
                              failed_members=failed)


def forecast_demand(
    history: pd.DataFrame, horizon: int, future: pd.DataFrame | None = None, *, model: str = "auto",
    config: ForecastConfig | None = None, n_jobs: int = 1, dask_client: Any = None,
    runner: Callable[..., pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """``unique_id, ds, mean, q_0.005 ... q_0.995``: never negative, quantiles never crossing.

    Same arguments as :func:`forecast_distribution`.
    """
    dist = forecast_distribution(
        history, horizon, future, model=model, config=config, n_jobs=n_jobs, dask_client=dask_client,
        runner=runner,
    )
    out = dist.quantile_frame()
    out.attrs["model"] = dist.model
    out.attrs["fallbacks"] = dist.fallbacks
    out.attrs["cold_start"] = dist.cold_start
    out.attrs["failed_members"] = dist.failed_members
    return out
