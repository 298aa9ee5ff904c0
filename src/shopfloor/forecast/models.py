"""Point-forecast models: statsforecast locals, a global LightGBM (mlforecast), ensembles, and safe fallbacks.

A *model spec* is a name from :data:`MODEL_NAMES` or several joined by ``+`` (an equal-weight mean ensemble,
e.g. ``"lgbm+ets"``, or weighted: ``"lgbm*0.6+ets*0.4"``). Each member returns one column of non-negative point forecasts on the
``unique_id, ds`` horizon grid. The statistical members run through statsforecast, so passing a Dask (or Spark,
Ray) DataFrame engine via ``dask_client`` runs them on a cluster through statsforecast's fugue backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from .frames import ID, TARGET, TIME, horizon_dates

SEASON = 7


def _stats_factories() -> dict[str, Callable[[], Any]]:
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoETS,
        CrostonSBA,
        SeasonalExponentialSmoothingOptimized,
        SeasonalNaive,
        SeasonalWindowAverage,
        WindowAverage,
    )

    return {
        "ets": lambda: AutoETS(season_length=SEASON, alias="ets"),
        # AutoETS without trend models (ANN/ANA and their multiplicative forms where the data allow): about 6x
        # cheaper than the full search, and a trend extrapolated 56 days is rarely what daily item demand does.
        "ets_nt": lambda: AutoETS(season_length=SEASON, model="ZNZ", alias="ets_nt"),
        "croston_sba": lambda: CrostonSBA(alias="croston_sba"),
        "adida": lambda: ADIDA(alias="adida"),
        "imapa": lambda: IMAPA(alias="imapa"),
        "tsb": lambda: TSB(alpha_d=0.1, alpha_p=0.1, alias="tsb"),
        "snaive": lambda: SeasonalNaive(season_length=SEASON, alias="snaive"),
        "swa": lambda: SeasonalWindowAverage(season_length=SEASON, window_size=4, alias="swa"),
        "seas_es": lambda: SeasonalExponentialSmoothingOptimized(season_length=SEASON, alias="seas_es"),
        "wa28": lambda: WindowAverage(window_size=28, alias="wa28"),
    }


STATS_MODELS = ("ets", "ets_nt", "croston_sba", "adida", "imapa", "tsb", "snaive", "swa", "seas_es", "wa28")
# ``lgbm_directN`` (N in DIRECT_LAGS): days 1..N from a direct LightGBM whose lags are all >= N, later days from the
# next longer one in the chain (..., 28, then ``lgbm_direct``'s 56). See :func:`direct_chain`.
DIRECT_LAGS = (7, 14, 28)
DIRECT_MEMBERS = tuple(f"lgbm_direct{n}" for n in DIRECT_LAGS)
MODEL_NAMES = (*STATS_MODELS, "lgbm", "lgbm_direct", *DIRECT_MEMBERS, "lgbm_mh", "lgbm_rel", "lgbm_rel_recent",
               "lgbm_tw_store", "lgbm_tw_dept")


def parse_weighted_spec(spec: str) -> list[tuple[str, float]]:
    """Split ``"a*0.6+b*0.4"`` (or ``"a+b"``: equal weights) into ``(member, weight)`` pairs; each member must be
    known, appear once and have a positive weight. Weights are returned as given (the ensemble normalises them)."""
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ValueError("empty model spec")
    out: list[tuple[str, float]] = []
    for part in parts:
        name, _, weight = part.partition("*")
        name = name.strip().lower()
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)} (join with '+', "
                             "weight as name*0.5)")
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} must be a number, got {weight.strip()!r}") from None
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"weight of {name!r} must be positive, got {weight.strip()!r}")
        if name in (m for m, _ in out):
            raise ValueError(f"model {name!r} appears twice in the spec")
        out.append((name, w))
    return out


def parse_spec(spec: str) -> list[str]:
    """Split ``"a+b"`` (weights allowed: ``"a*2+b"``) into members and check each is known."""
    return [m for m, _ in parse_weighted_spec(spec)]


@dataclass(frozen=True)
class LGBMConfig:
    """Global LightGBM settings. Training uses the last ``train_days`` per series, at most ``max_rows`` rows.

    ``long_levels`` adds slow level features (a 112-day mean ending 28 days back and a 12-week same-weekday
    mean), which steady the recursive forecast over long horizons. ``min_lag`` is the shortest lag: 1 for the
    recursive ``lgbm`` member; the ``lgbm_direct`` member uses ``direct_min_lag`` (56), so that for every day up
    to 56 ahead all its lag features are observed demand, never its own earlier predictions.
    """

    train_days: int = 540
    max_rows: int = 2_000_000
    n_estimators: int = 300
    learning_rate: float = 0.07
    num_leaves: int = 31
    max_bin: int = 127
    min_child_samples: int = 100
    tweedie_variance_power: float = 1.1
    seed: int = 0
    block_rows: int = 4_000_000
    long_levels: bool = True
    min_lag: int = 1
    direct_min_lag: int = 56
    extra_params: dict[str, Any] = field(default_factory=dict)


#: A global LightGBM needs at least this many leaves' worth (``min_child_samples``) of training rows.
MIN_TRAIN_LEAVES = 20


def trailing_mean_forecast(history: pd.DataFrame, horizon: int, window: int = 28) -> pd.DataFrame:
    """Flat forecast = mean of each series' last ``window`` days. The fallback of last resort: it cannot fail."""
    tail = history.groupby(ID, sort=True).tail(window)
    level = tail.groupby(ID, sort=True)[TARGET].mean()
    grid = horizon_dates(history, horizon)
    grid["fallback"] = np.repeat(level.to_numpy(dtype="float64"), horizon)
    return grid


def stats_forecast(
    history: pd.DataFrame, horizon: int, members: list[str], *, n_jobs: int = 1, max_days: int | None = 728,
    dask_client: Any = None,
) -> pd.DataFrame:
    """Forecast ``members`` (statsforecast models) on ``unique_id, ds, y``; one column per member."""
    from statsforecast import StatsForecast

    factories = _stats_factories()
    df = history[[ID, TIME, TARGET]]
    if max_days:
        df = df.groupby(ID, sort=False).tail(max_days)
    sf = StatsForecast(
        models=[factories[m]() for m in members], freq="D", n_jobs=n_jobs,
        fallback_model=factories["wa28"]() if dask_client is None else None,
    )
    if dask_client is not None:
        import dask.dataframe as dd

        ddf = dd.from_pandas(df.reset_index(drop=True), npartitions=max(1, len(dask_client.nthreads())))
        out = sf.forecast(df=ddf, h=horizon).compute()
    else:
        out = sf.forecast(df=df, h=horizon)
    out = out.reset_index(drop=True) if ID in out.columns else out.reset_index()
    out[ID] = out[ID].astype(str)
    out[TIME] = pd.to_datetime(out[TIME])  # the fugue path returns dates as text
    return out.sort_values([ID, TIME]).reset_index(drop=True)[[ID, TIME, *members]]


def _price_features(frame: pd.DataFrame, ref_max: pd.Series) -> pd.DataFrame:
    """Relative price and week-on-week price change (both NaN while not on sale)."""
    out = frame
    if "price" in out.columns:
        mx = out[ID].map(ref_max).astype("float32")
        out["price_rel"] = (out["price"] / mx).astype("float32")
        prev = out.groupby(ID, sort=False)["price"].shift(7)
        out["price_chg"] = (out["price"] / prev).astype("float32")
    return out


def lgbm_forecast(
    history: pd.DataFrame, horizon: int, future: pd.DataFrame | None, covariates: list[str], *,
    config: LGBMConfig | None = None, n_jobs: int = 1, name: str = "lgbm", dask_client: Any = None,
) -> pd.DataFrame:
    """Global LightGBM (Tweedie) through mlforecast, predicted recursively so any horizon works.

    Features: lags 1/7/14/28 (or ``min_lag`` + 0/7/14/21 days), rolling and day-of-week rolling means on the
    shortest lag (and on lags 7 and 28 when ``min_lag`` is 1), calendar (day of week, day of month, month), and the
    covariates (plus relative price and price change when ``price`` is present). Covariates are used only when
    ``future`` provides them for the horizon. The forecast column is called ``name``.

    With ``dask_client`` the features are built and the model trained on the Dask cluster (mlforecast's
    ``DistributedMLForecast`` with LightGBM's Dask estimator), partitioned by series; it then trains on every row of
    the training window instead of a ``max_rows`` sample.
    """
    import lightgbm as lgb

    cfg = config or LGBMConfig()
    covs = [c for c in covariates if future is not None and c in future.columns]
    state = state_days(cfg)
    keep = cfg.train_days + state
    df = history.groupby(ID, sort=False).tail(keep)[[ID, TIME, TARGET, *covs]].reset_index(drop=True)
    x_future = None
    if covs:
        grid = horizon_dates(history, horizon)
        x_future = grid.merge(future[[ID, TIME, *covs]], on=[ID, TIME], how="left")
        # Rows absent from the future file carry the last known value forward (price stays, flags stay).
        last = df.groupby(ID, sort=True)[covs].last()
        for c in covs:
            x_future[c] = x_future[c].fillna(x_future[ID].map(last[c]))
        if "price" in covs:
            ref_max = df.groupby(ID, sort=False)["price"].max()
            # ``df`` is sorted and gap-free per series, so its features need no concat, sort or merge (each of
            # those copies the whole panel); the horizon needs only each series' last week before it.
            df = _price_features(df, ref_max)
            extra = ["price_rel", "price_chg"]
            last_week = df.groupby(ID, sort=False).tail(7)[[ID, TIME, "price"]]
            both = pd.concat([last_week, x_future[[ID, TIME, "price"]]], ignore_index=True)
            both = _price_features(both.sort_values([ID, TIME], kind="stable"), ref_max)
            x_future = x_future.merge(both[[ID, TIME, *extra]], on=[ID, TIME], how="left")
    params = dict(
        objective="tweedie", tweedie_variance_power=cfg.tweedie_variance_power, n_estimators=cfg.n_estimators,
        learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves, max_bin=cfg.max_bin, min_child_samples=cfg.min_child_samples,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=0.1, random_state=cfg.seed,
        n_jobs=n_jobs, verbosity=-1,
    )
    params.update(cfg.extra_params)  # extra_params may override any of the above
    features = dict(freq="D", lags=_lags(cfg.min_lag), lag_transforms=_lag_transforms(cfg.long_levels, cfg.min_lag),
                    date_features=["dayofweek", "day", "month"])
    if dask_client is not None:
        out = _dask_lgbm(df, horizon, x_future, params, features, state, dask_client)
    else:
        from mlforecast import MLForecast

        mlf = MLForecast(models={"lgbm": lgb.LGBMRegressor(**params)}, num_threads=n_jobs, **features)
        X, y = _training_rows(mlf, df, cfg)
        mlf.fit_models(X, y)
        del X, y
        # Only the recent tail is needed to roll the lags forward over the horizon.
        mlf.preprocess(df.groupby(ID, sort=False).tail(state), static_features=[], dropna=False, keep_last_n=state)
        out = mlf.predict(horizon, X_df=x_future)
    out[ID] = out[ID].astype(str)
    out = out.rename(columns={"lgbm": name})
    return out.sort_values([ID, TIME]).reset_index(drop=True)[[ID, TIME, name]]


def _dask_lgbm(
    df: pd.DataFrame, horizon: int, x_future: pd.DataFrame | None, params: dict[str, Any], features: dict[str, Any],
    state: int, client: Any,
) -> pd.DataFrame:
    """Train and predict on a Dask cluster: one partition per worker thread (at least one), split by series."""
    import dask.dataframe as dd
    from mlforecast.distributed import DistributedMLForecast
    from mlforecast.distributed.models.dask.lgb import DaskLGBMForecast

    n_parts = max(1, min(sum(client.nthreads().values()), df[ID].nunique()))
    params = {k: v for k, v in params.items() if k != "n_jobs"}
    model = DaskLGBMForecast(client=client, **params)
    mlf = DistributedMLForecast(models={"lgbm": model}, engine=client, num_partitions=n_parts, **features)
    ddf = dd.from_pandas(df, npartitions=n_parts)
    mlf.fit(ddf, static_features=[], dropna=True, keep_last_n=state)
    x = dd.from_pandas(x_future, npartitions=n_parts) if x_future is not None else None
    out = mlf.predict(horizon, X_df=x)
    out = out.compute() if hasattr(out, "compute") else out
    out = out.reset_index(drop=True)
    out[TIME] = pd.to_datetime(out[TIME])
    return out


def _lags(min_lag: int) -> list[int]:
    return [1, 7, 14, 28] if min_lag <= 1 else [min_lag, min_lag + 7, min_lag + 14, min_lag + 21]


def _lag_transforms(long_levels: bool, min_lag: int = 1) -> dict[int, list[Any]]:
    from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean

    if min_lag > 1:
        tf_d: dict[int, list[Any]] = {min_lag: [
            RollingMean(window_size=7), RollingMean(window_size=28), SeasonalRollingMean(season_length=7, window_size=4),
        ]}
        if long_levels:
            tf_d[min_lag] += [SeasonalRollingMean(season_length=7, window_size=12, min_samples=4),
                              RollingMean(window_size=112, min_samples=28)]
        return tf_d

    tf: dict[int, list[Any]] = {
        1: [RollingMean(window_size=7), RollingMean(window_size=28)],
        7: [RollingMean(window_size=7), RollingMean(window_size=28),
            SeasonalRollingMean(season_length=7, window_size=4)],
        28: [RollingMean(window_size=28)],
    }
    if long_levels:
        # Partial windows count, so a series needs no more history to train on than without these features.
        tf[7].append(SeasonalRollingMean(season_length=7, window_size=12, min_samples=4))
        tf[28].append(RollingMean(window_size=112, min_samples=28))
    return tf


_STATE_DAYS = 64  # >= largest lag (28) + longest window on it (28)
_LONG_STATE_DAYS = 144  # lag 28 + a 112-day window, plus slack


def direct_config(config: LGBMConfig) -> LGBMConfig:
    """The ``lgbm_direct`` member's settings: ``config`` with ``min_lag = direct_min_lag``."""
    return replace(config, min_lag=config.direct_min_lag)


def direct_chain(member: str, config: LGBMConfig) -> list[int]:
    """Minimum lags of the direct models behind a member, shortest first: ``lgbm_direct14`` -> ``[14, 28, 56]``,
    ``lgbm_direct`` -> ``[56]``; empty for any other member. Forecast day ``k`` comes from the first model in the
    chain whose minimum lag is >= ``k`` (the last one beyond that), so up to day ``direct_min_lag`` no day uses the
    model's own predictions."""
    if member == "lgbm_direct":
        return [config.direct_min_lag]
    if member in DIRECT_MEMBERS:
        first = int(member.removeprefix("lgbm_direct"))
        return sorted({lag for lag in (*DIRECT_LAGS, config.direct_min_lag) if lag >= first})
    return []


def state_days(config: LGBMConfig) -> int:
    """Days of history a series needs for every lag feature (largest lag + longest window on it)."""
    base = _LONG_STATE_DAYS if config.long_levels else _STATE_DAYS
    return base + max(0, config.min_lag - 1) if config.min_lag > 1 else base


def _training_rows(mlf: Any, df: pd.DataFrame, cfg: LGBMConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows for training, built a block of series at a time and subsampled to ``cfg.max_rows``,
    so that peak memory stays bounded on large panels."""
    sizes = df.groupby(ID, sort=False).size()
    state = state_days(cfg)
    est_rows = int(np.minimum(np.maximum(sizes.to_numpy() - state, 0), cfg.train_days).sum())
    frac = min(1.0, cfg.max_rows / est_rows) if est_rows else 1.0
    bounds = np.concatenate([[0], np.cumsum(sizes.to_numpy())])
    per_block = max(1, int(cfg.block_rows // max(1, sizes.mean())))
    last_ds = df[TIME].max()
    rng = np.random.default_rng(cfg.seed)
    xs, ys = [], []
    for lo in range(0, len(sizes), per_block):
        hi = min(lo + per_block, len(sizes))
        part = df.iloc[bounds[lo]:bounds[hi]]
        prep = mlf.preprocess(part, static_features=[], dropna=True, keep_last_n=state)
        prep = prep[prep[TIME] > last_ds - pd.Timedelta(days=cfg.train_days)]
        if frac < 1.0:
            prep = prep[rng.random(len(prep)) < frac]
        ys.append(prep[TARGET].to_numpy(dtype="float32"))
        xs.append(prep.drop(columns=[ID, TIME, TARGET]).astype("float32"))
        del prep
    rows = sum(len(v) for v in ys)
    if not xs or rows == 0:
        raise ValueError("no training rows after lag features (series too short)")
    # With fewer rows than about twenty leaves' worth, a global model learns little beyond the panel's average (with
    # too few it cannot even split) and would pull every series towards it; the member then fails over to the
    # per-series fallback instead (tiny or young stores).
    need = MIN_TRAIN_LEAVES * cfg.min_child_samples
    if rows < need:
        raise ValueError(f"{rows} training rows after lag features, fewer than the {need} a global model needs "
                         "(too few or too short series)")
    return pd.concat(xs, ignore_index=True), np.concatenate(ys)


def cold_start_rate(
    cold: pd.DataFrame, warm: pd.DataFrame, horizon: int, *, recent_days: int = 28, prior_days: float = 14.0,
    group_of: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Rate model for new SKUs: a Bayesian shrinkage of the series' own daily rate towards a prior.

    The prior is the median recent daily rate of established series in the same group (``group_of`` maps
    ``unique_id`` to e.g. category) or, failing that, of all established series. With ``n`` days of history the
    forecast is ``(sum(y) + prior_days * prior) / (n + prior_days)``, flat over the horizon.
    """
    if warm.empty:
        recent = pd.Series(dtype="float64")
    else:
        recent = warm.groupby(ID, sort=True).tail(recent_days).groupby(ID)[TARGET].mean()
    global_prior = float(recent.median()) if len(recent) else float(cold[TARGET].mean())
    group_prior: dict[str, float] = {}
    if group_of:
        groups = pd.Series({u: group_of.get(u) for u in recent.index}, dtype="object")
        group_prior = recent.groupby(groups).median().to_dict()
    stats_ = cold.groupby(ID, sort=True)[TARGET].agg(["sum", "size"])
    prior = np.array(
        [group_prior.get((group_of or {}).get(u), global_prior) for u in stats_.index], dtype="float64"
    )
    rate = (stats_["sum"].to_numpy() + prior_days * prior) / (stats_["size"].to_numpy() + prior_days)
    grid = horizon_dates(cold, horizon)
    grid["mean"] = np.repeat(rate, horizon)
    return grid
