"""``lgbm_mh``: one global LightGBM trained across many forecast origins, with the horizon as a feature.

Each training row is a (series, origin, horizon ``k``) triple drawn from the last ``origin_days`` days: its
features are what was known at the origin (recent means over 7/28/56/112 days, same-weekday means, the share of
zero days, days since the last sale, the same weeks a year earlier, the price at the origin and its change) plus the
target day's calendar (day of week, day of month, month, known-ahead flags such as ``snap`` and ``event``) and
``k``; its target is demand ``k`` days after the origin. So every forecast day, 1 or 56 days ahead, is predicted
directly from data up to the forecast origin: no recursion (no drift from the model's own predictions) and no
lag gap (a lag-56 model ignores the last 27 days when it predicts day 29).

``lgbm_rel`` is the same model with every demand feature divided by the series' level at the origin (its mean over
the last ``level_days`` days, at least ``level_floor``), the target divided by it too and each row weighted by it
(so the Tweedie loss still counts units): one set of trees then serves slow and fast series alike, learning how
demand moves *relative to* its recent level (the weekly shape, last year's seasonal change from the same point,
the effect of a price cut, the decay of a dead series) instead of re-learning each volume band. It trains on
origins drawn from the last two years by default, so every season is seen at least twice.

``lgbm_rel_recent`` is ``lgbm_rel`` with the last days' demand added to the features (the origin day itself, the
means of the last 3 and 14 days, the same weekday one week before the target's latest known one), which the first
days of a horizon depend on most; everything else, the relative scale included, is ``lgbm_rel``'s.

``lgbm_tw_store`` and ``lgbm_tw_dept`` are raw-unit Tweedie models (no level normalisation) trained like
``lgbm_rel`` across origins from the last two years, but **one model per group of series**: per store or per
department, as the M5 winners grouped theirs. A series' group is read from its ``unique_id`` with a regular
expression (``group_pattern``; for M5's ``ITEM_DEPT_NNN_STATE_N`` ids the store is the trailing ``CA_1``, the
department the leading ``FOODS_3``); series in groups with fewer than ``min_group_series`` members, or whose id does
not match, are pooled into one more group; the series of a group too short to train a model alone are forecast
by one model trained on every series. The
training-row cap ``max_rows`` is shared among the groups in proportion to their series, so the whole member trains
on as many rows as one global fit would, and only one group's rows are held at a time.

Prices enter only as known at the origin, which is all a forecast of next month has; a future price path in
``future`` is not used by this member. Features are built with prefix sums over a series x day matrix, a block of
series at a time, so memory is bounded by the block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .frames import ID, TARGET, TIME

#: Days before an origin the features look back (the year-ago window: 364 + 27 days).
LOOKBACK_DAYS = 392

#: Demand features that ``normalise`` divides by the level.
_LEVEL_FEATURES = ("m7", "m28", "m56", "m112", "m364", "dow4", "dow12", "ly7", "ly_level28")

#: The short-term demand features added by ``recent`` (also divided by the level when normalised).
_RECENT_FEATURES = ("y0", "m3", "m14", "dow1")


def _normalise(f: dict[str, np.ndarray], level: np.ndarray) -> dict[str, np.ndarray]:
    """Demand features relative to ``level``, plus the level itself (log) and last year's change from the same
    point (the same week a year ago over the level a year before the origin)."""
    out = dict(f)
    for name in (*_LEVEL_FEATURES, *_RECENT_FEATURES):
        if name in f:
            out[name] = f[name] / level
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ly_change"] = np.where(f["ly_level28"] > 0, f["ly7"] / f["ly_level28"], np.nan)
    out["log_level"] = np.log(level)
    return out


@dataclass(frozen=True)
class HorizonLGBMConfig:
    """Settings of the ``lgbm_mh`` member. Training origins are drawn from the last ``origin_days`` days; at most
    ``max_rows`` training rows; horizons 1..max(``max_horizon``, the requested horizon) are trained."""

    origin_days: int = 364
    max_horizon: int = 56
    max_rows: int = 1_000_000
    #: At most this many training rows per available origin day of a series (small panels train on fewer rows).
    draws_per_origin_day: int = 4
    n_estimators: int = 350
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_child_samples: int = 100
    tweedie_variance_power: float = 1.1
    max_bin: int = 127
    seed: int = 0
    block_series: int = 3000
    extra_params: dict[str, Any] | None = None
    #: Divide the demand features and the target by the series' level at the origin (``lgbm_rel``).
    normalise: bool = False
    level_days: int = 56
    level_floor: float = 0.1
    #: Models trained on independently drawn rows (seeds ``seed``, ``seed + 1``, ...), their forecasts averaged.
    bags: int = 1
    #: Add the short-term demand features (``lgbm_rel_recent``). Left out of ``repr`` so that the backtest cache
    #: keys of the members without it stay those of earlier versions; :meth:`fingerprint_parts` names it.
    recent: bool = field(default=False, repr=False)
    #: One model per group of series (``lgbm_tw_store``, ``lgbm_tw_dept``): the group is the first match of this
    #: regular expression in ``unique_id`` (None: one global model). Left out of ``repr`` like ``recent``.
    group_pattern: str | None = field(default=None, repr=False)
    #: Groups with fewer series are pooled (with the ids the pattern does not match) into one more group.
    min_group_series: int = field(default=20, repr=False)

    def __post_init__(self) -> None:
        if self.bags < 1 or self.max_rows < 1 or self.n_estimators < 1:
            raise ValueError("bags, max_rows and n_estimators must be at least 1")
        if self.level_days < 1 or self.level_floor <= 0:
            raise ValueError("level_days must be at least 1 and level_floor positive")
        if self.group_pattern is not None:
            re.compile(self.group_pattern)
            if self.min_group_series < 1:
                raise ValueError("min_group_series must be at least 1")

    def fingerprint_parts(self) -> tuple[Any, ...]:
        """What a cache key of this member's forecasts must cover: ``repr`` plus the fields left out of it."""
        parts: tuple[Any, ...] = (self,) if not self.recent else (self, "recent")
        if self.group_pattern is not None:
            parts += ("group", self.group_pattern, self.min_group_series)
        return parts

    @property
    def history_days(self) -> int:
        """Days of history per series the member uses."""
        return self.origin_days + LOOKBACK_DAYS


def _prefix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of the values (NaN as 0) and of the count of non-NaN days; column 0 is 0."""
    n, t = values.shape
    s = np.zeros((n, t + 1))
    c = np.zeros((n, t + 1), dtype=np.int32)
    np.cumsum(np.nan_to_num(values), axis=1, out=s[:, 1:])
    np.cumsum(~np.isnan(values), axis=1, out=c[:, 1:])
    return s, c


def _window_mean(s, c, rows, end, width) -> np.ndarray:
    """Mean of days ``end - width + 1 .. end`` (inclusive; NaN days skipped) for each (row, end)."""
    hi = end + 1
    lo = np.maximum(hi - width, 0)
    total = s[rows, hi] - s[rows, lo]
    count = c[rows, hi] - c[rows, lo]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _weekly_prefix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums along each weekday: ``s7[:, i + 7] = v[i] + v[i - 7] + ...``; columns 0..6 are 0."""
    n, t = values.shape
    v = np.nan_to_num(values)
    ok = (~np.isnan(values)).astype(np.int32)
    s7 = np.zeros((n, t + 7))
    c7 = np.zeros((n, t + 7), dtype=np.int32)
    for r in range(7):
        s7[:, 7 + r::7] = np.cumsum(v[:, r::7], axis=1)
        c7[:, 7 + r::7] = np.cumsum(ok[:, r::7], axis=1)
    return s7, c7


def _same_weekday_mean(s7, c7, rows, target, first_week, weeks) -> np.ndarray:
    """Mean of days ``target - 7*first_week``, ``target - 7*(first_week+1)``, ... (``weeks`` of them)."""
    hi = target - 7 * first_week + 7
    lo = target - 7 * (first_week + weeks) + 7
    lo = np.where(lo < 0, hi % 7, lo)
    hi = np.maximum(hi, 0)
    total = s7[rows, hi] - s7[rows, lo]
    count = c7[rows, hi] - c7[rows, lo]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class _Block:
    """Matrices of one block of series: demand (NaN outside a series' days), price carried forward, and the
    known-ahead covariates over history + horizon."""

    def __init__(self, y, price, flags, last, days):
        self.y, self.price, self.flags, self.last, self.days = y, price, flags, last, days
        self.s, self.c = _prefix(y)
        self.s7, self.c7 = _weekly_prefix(y)
        self.zs, _ = _prefix((y == 0).astype("float64") + np.where(np.isnan(y), np.nan, 0.0))
        idx = np.where(y > 0, np.arange(y.shape[1])[None, :], -1)
        self.last_sale = np.maximum.accumulate(idx, axis=1)
        first = np.argmax(~np.isnan(y), axis=1)
        self.first = first
        if price is not None:
            self.pmax = np.fmax.accumulate(price, axis=1)

    def features(self, rows: np.ndarray, origin: np.ndarray, k: np.ndarray,
                 recent: bool = False) -> dict[str, np.ndarray]:
        target = origin + k
        f: dict[str, np.ndarray] = {"k": k.astype("float32")}
        for w in (7, 28, 56, 112):
            f[f"m{w}"] = _window_mean(self.s, self.c, rows, origin, w)
        f["m364"] = _window_mean(self.s, self.c, rows, origin, 364)
        first_week = -(-k // 7)  # ceil(k / 7): the latest same weekday on or before the origin
        f["dow4"] = _same_weekday_mean(self.s7, self.c7, rows, target, first_week, 4)
        f["dow12"] = _same_weekday_mean(self.s7, self.c7, rows, target, first_week, 12)
        if recent:
            f["y0"] = self.y[rows, origin]
            f["m3"] = _window_mean(self.s, self.c, rows, origin, 3)
            f["m14"] = _window_mean(self.s, self.c, rows, origin, 14)
            f["dow1"] = _same_weekday_mean(self.s7, self.c7, rows, target, first_week, 1)
        f["zero28"] = _window_mean(self.zs, self.c, rows, origin, 28)
        ls = self.last_sale[rows, origin]
        f["since_sale"] = np.where(ls >= 0, origin - ls, origin - self.first[rows] + 1).astype("float64")
        f["age"] = (origin - self.first[rows]).astype("float64")
        # the same days a year earlier, and the level before them (what last year's season did from there)
        ly_end = target - 364 + 3
        known = ly_end <= origin
        f["ly7"] = np.where(known, _window_mean(self.s, self.c, rows, np.maximum(ly_end, 0), 7), np.nan)
        f["ly_level28"] = _window_mean(self.s, self.c, rows, np.maximum(origin - 364, 0), 28)
        f["ly_level28"] = np.where(origin - 364 >= 0, f["ly_level28"], np.nan)
        if self.price is not None:
            p = self.price[rows, origin]
            f["price"] = p
            f["price_rel"] = p / self.pmax[rows, origin]
            back = np.maximum(origin - 28, 0)
            f["price_chg28"] = p / self.price[rows, back]
        dates = self.days[target]
        f["dow"] = dates.dayofweek.to_numpy().astype("float32")
        f["dom"] = dates.day.to_numpy().astype("float32")
        f["month"] = dates.month.to_numpy().astype("float32")
        for name, mat in self.flags.items():
            f[name] = mat[rows, target]
        return f


def _level(blk: _Block, rows: np.ndarray, origin: np.ndarray, cfg: HorizonLGBMConfig) -> np.ndarray:
    """The series' level at each origin: its mean over the last ``level_days`` days, at least ``level_floor``."""
    level = _window_mean(blk.s, blk.c, rows, origin, cfg.level_days)
    return np.maximum(np.nan_to_num(level, nan=0.0), cfg.level_floor)


def _blocks(hist: pd.DataFrame, future: pd.DataFrame | None, covs: list[str], horizon: int, block: int):
    """Yield ``(ids, _Block)`` per block of series."""
    start = hist[TIME].min()
    n_days = int((hist[TIME].max() - start).days) + 1
    days = pd.date_range(start, periods=n_days + horizon, freq="D")
    flag_cols = [c for c in covs if c != "price"]
    codes, uniques = pd.factorize(hist[ID], sort=True)
    day_idx = ((hist[TIME] - start).dt.days).to_numpy()
    bounds = np.searchsorted(codes, np.arange(len(uniques) + 1))  # validated history: sorted by id
    fut = None
    if future is not None and flag_cols:
        fut = future[future[ID].isin(set(uniques))]
        fcodes = pd.Categorical(fut[ID], categories=uniques).codes
        fday = ((fut[TIME] - start).dt.days).to_numpy()
    for lo in range(0, len(uniques), block):
        hi = min(lo + block, len(uniques))
        nb = hi - lo
        r0, r1 = bounds[lo], bounds[hi]
        rows = codes[r0:r1] - lo
        cols = day_idx[r0:r1]
        y = np.full((nb, n_days), np.nan)
        y[rows, cols] = hist[TARGET].to_numpy(dtype="float64")[r0:r1]
        price = None
        if "price" in covs:
            price = np.full((nb, n_days), np.nan)
            price[rows, cols] = hist["price"].to_numpy(dtype="float64")[r0:r1]
            price = pd.DataFrame(price).ffill(axis=1).to_numpy()
        flags = {}
        for col in flag_cols:
            mat = np.full((nb, n_days + horizon), np.nan)
            mat[rows, cols] = hist[col].to_numpy(dtype="float64")[r0:r1]
            if fut is not None and col in fut.columns:
                sel = (fcodes >= lo) & (fcodes < hi) & (fday >= 0) & (fday < n_days + horizon)
                mat[fcodes[sel] - lo, fday[sel]] = fut[col].to_numpy(dtype="float64")[sel]
            flags[col] = mat
        last = np.full(nb, -1)
        np.maximum.at(last, rows, cols)
        yield uniques[lo:hi], _Block(y, price, flags, last, days)


def _train(hist: pd.DataFrame, future: pd.DataFrame | None, covs: list[str], max_k: int, cfg: HorizonLGBMConfig,
           seed: int, n_jobs: int, dask_client: Any) -> tuple[Any, list[str]]:
    """Draw training rows (origins and horizons at random, with ``seed``) and fit one LightGBM on them."""
    import lightgbm as lgb

    n_series = hist[ID].nunique()
    rng = np.random.default_rng(seed)
    per_series = max(1, cfg.max_rows // max(1, n_series))
    xs, ys, ws = [], [], []
    for _, blk in _blocks(hist, future, covs, max_k, cfg.block_series):
        lo = np.maximum(blk.first + 28, blk.last - cfg.origin_days)
        ok = np.flatnonzero(lo < blk.last)
        draws = np.minimum(per_series, cfg.draws_per_origin_day * (blk.last[ok] - lo[ok]))
        rows = np.repeat(ok, draws)
        if rows.size == 0:
            continue
        span = blk.last[rows] - lo[rows]
        origin = lo[rows] + (rng.random(rows.size) * span).astype(np.int64)
        kmax = np.minimum(max_k, blk.last[rows] - origin)
        k = 1 + (rng.random(rows.size) * kmax).astype(np.int64)
        target = blk.y[rows, origin + k]
        keep = ~np.isnan(target)
        rows, origin, k, target = rows[keep], origin[keep], k[keep], target[keep]
        feats = blk.features(rows, origin, k, cfg.recent)
        if cfg.normalise:
            level = _level(blk, rows, origin, cfg)
            feats = _normalise(feats, level)
            target = target / level
            ws.append(level.astype("float32"))  # the loss still counts units
        xs.append(pd.DataFrame(feats).astype("float32"))
        ys.append(target.astype("float32"))
        del blk
    if not xs or sum(len(v) for v in ys) < 20 * cfg.min_child_samples:
        raise ValueError("too few training rows for the multi-horizon LightGBM (too few or too short series)")
    X = pd.concat(xs, ignore_index=True)
    y = np.concatenate(ys)
    w = np.concatenate(ws) if ws else None
    del xs, ys, ws
    params = dict(objective="tweedie", tweedie_variance_power=cfg.tweedie_variance_power,
                  n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves,
                  min_child_samples=cfg.min_child_samples, max_bin=cfg.max_bin, subsample=0.8, subsample_freq=1,
                  colsample_bytree=0.8, reg_lambda=0.1, random_state=seed, n_jobs=n_jobs, verbosity=-1)
    params.update(cfg.extra_params or {})
    if dask_client is None:
        model = lgb.LGBMRegressor(**params)
        model.fit(X, y, sample_weight=w)
    else:
        import dask.dataframe as dd

        parts = max(1, min(sum(dask_client.nthreads().values()), len(X) // 1000 or 1))
        params.pop("n_jobs", None)
        dask_model = lgb.DaskLGBMRegressor(client=dask_client, **params)
        dw = dd.from_pandas(pd.Series(w), npartitions=parts) if w is not None else None
        dask_model.fit(dd.from_pandas(X, npartitions=parts), dd.from_pandas(pd.Series(y), npartitions=parts),
                       sample_weight=dw)
        model = dask_model.to_local()
    return model, list(X.columns)


#: Name of the pooled group (small groups and ids the pattern does not match).
POOLED_GROUP = "<pooled>"


def series_groups(ids: pd.Series | np.ndarray | list[str], pattern: str, min_series: int = 1) -> pd.Series:
    """Group of each unique id: the first match of ``pattern`` in it; ids without a match, and groups with fewer
    than ``min_series`` ids, get :data:`POOLED_GROUP`. Indexed by the (unique) ids."""
    uniq = pd.Index(pd.unique(np.asarray(ids, dtype=object)))
    rx = re.compile(pattern)
    found = [rx.search(str(u)) for u in uniq]
    groups = pd.Series([m.group(0) if m else POOLED_GROUP for m in found], index=uniq, dtype=object)
    counts = groups.map(groups.value_counts())
    return groups.where(counts >= min_series, POOLED_GROUP)


def horizon_lgbm_forecast(
    history: pd.DataFrame, horizon: int, future: pd.DataFrame | None, covariates: list[str], *,
    config: HorizonLGBMConfig | None = None, n_jobs: int = 1, name: str = "lgbm_mh", dask_client: Any = None,
) -> pd.DataFrame:
    """Forecast ``unique_id, ds, <name>`` for every series of a validated history (see the module docstring).

    With ``bags`` > 1, that many models are trained on independently drawn rows (seeds ``seed``, ``seed + 1``, ...)
    and their forecasts averaged. With ``dask_client`` the models are trained on the Dask cluster (LightGBM's Dask
    estimator, the training rows split into one partition per worker thread); the rows are built, and the forecast
    predicted, on the driver. With ``group_pattern``, one such model per group of series (module docstring); the
    groups are forecast one after another, each with its share of ``max_rows``."""
    cfg = config or HorizonLGBMConfig()
    if cfg.group_pattern is None:
        return _horizon_forecast(history, horizon, future, covariates, cfg, n_jobs, name, dask_client)
    groups = series_groups(history[ID].unique(), cfg.group_pattern, cfg.min_group_series)
    n_all = len(groups)

    def fit(ids: pd.Index) -> pd.DataFrame:
        part = history[history[ID].isin(ids)]
        share = max(1, int(round(cfg.max_rows * len(ids) / n_all)))
        gcfg = replace(cfg, group_pattern=None, max_rows=share)
        return _horizon_forecast(part, horizon, future, covariates, gcfg, n_jobs, name, dask_client)

    outs, failed = [], []
    for _, members in groups.groupby(groups, sort=True):
        try:
            outs.append(fit(members.index))
        except ValueError:  # too few training rows in this group (short series): pooled below
            failed.append(members.index)
    if failed:
        # Series of groups too short to train alone are forecast by one model trained on every series (it raises
        # when even that has too few rows).
        short = set(failed[0].append(failed[1:]) if len(failed) > 1 else failed[0])
        pooled = fit(groups.index)
        outs.append(pooled[pooled[ID].isin(short)])
    out = pd.concat(outs, ignore_index=True)
    return out.sort_values([ID, TIME]).reset_index(drop=True)


def _horizon_forecast(
    history: pd.DataFrame, horizon: int, future: pd.DataFrame | None, covariates: list[str],
    cfg: HorizonLGBMConfig, n_jobs: int, name: str, dask_client: Any,
) -> pd.DataFrame:
    max_k = max(cfg.max_horizon, horizon)
    covs = [c for c in covariates if c in history.columns]
    if future is None:
        covs = [c for c in covs if c == "price"]  # target-day flags need their future values
    # Each series' last days and the columns used, copied once (a tail, a column pick and a reset_index would each
    # copy the rows: on a full M5 panel that is GBs at the run's peak).
    recent = history.groupby(ID, sort=False).cumcount(ascending=False).to_numpy() < cfg.history_days + max_k
    hist = history.loc[recent, [ID, TIME, TARGET, *covs]]
    del recent
    hist.index = pd.RangeIndex(len(hist))
    fitted = [_train(hist, future, covs, max_k, cfg, cfg.seed + b, n_jobs, dask_client) for b in range(cfg.bags)]
    outs = []
    for ids, blk in _blocks(hist, future, covs, max_k, cfg.block_series):
        nb = len(blk.last)
        rows = np.repeat(np.arange(nb), horizon)
        k = np.tile(np.arange(1, horizon + 1), nb)
        origin = blk.last[rows]
        feats = blk.features(rows, origin, k, cfg.recent)
        scale = 1.0
        if cfg.normalise:
            scale = _level(blk, rows, origin, cfg)
            feats = _normalise(feats, scale)
        X = pd.DataFrame(feats).astype("float32")
        pred = np.mean([model.predict(X[columns]) for model, columns in fitted], axis=0) * scale
        outs.append(pd.DataFrame({ID: np.asarray(ids, dtype=object)[rows], TIME: blk.days[origin + k],
                                  name: np.maximum(pred, 0.0)}))
    out = pd.concat(outs, ignore_index=True)
    out[ID] = out[ID].astype(str)
    return out.sort_values([ID, TIME]).reset_index(drop=True)
