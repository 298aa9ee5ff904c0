"""Count distributions around a point forecast: negative binomial with a per-series dispersion.

Demand is counts, often intermittent, so intervals come from a negative binomial (NB2) fitted to the point
forecast: ``Var[y] = mean + alpha * mean**2``. ``alpha`` is estimated per series from history by the method of
moments against a *lagged* trailing mean (the error a level forecast made ``lag`` days earlier would have seen),
shrunk towards the panel median so that short or sparse series borrow strength. ``alpha = 0`` is Poisson.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .frames import ID, QUANTILE_COLUMNS, QUANTILES, TARGET, TIME

MIN_ALPHA = 1e-4


@dataclass(frozen=True)
class DispersionConfig:
    """How the per-series NB dispersion is estimated.

    window: days of recent history used; level_window: length of the trailing mean;
    lag: how many days before ``t`` that trailing mean ends (mimics a forecast made ``lag`` days ahead);
    shrink_days: pseudo-days of the panel median mixed into each series' estimate;
    scale: multiplier on the estimate (0.8: the ensemble's errors are smaller than the trailing mean's the estimate
    is measured against; chosen by backtest, docs/benchmarks/forecast.md); growth: relative increase of alpha per
    28 horizon days; week_scales: when given, a multiplier per horizon week (days 1-7, 8-14, ...; the last one
    for every later week) *instead of* the growth (``scale`` still applies).
    """

    window: int = 364
    level_window: int = 28
    lag: int = 14
    shrink_days: float = 56.0
    scale: float = 0.8
    growth: float = 0.25
    week_scales: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.week_scales is not None:
            ws = tuple(float(w) for w in self.week_scales)
            if not ws or not all(np.isfinite(w) and w > 0 for w in ws):
                raise ValueError(f"week_scales must be positive numbers, got {self.week_scales!r}")
            object.__setattr__(self, "week_scales", ws)

    def horizon_multiplier(self, step: np.ndarray) -> np.ndarray:
        """Multiplier of alpha at horizon ``step`` (1-based): the week's scale, else the growth per 28 days."""
        step = np.asarray(step)
        if self.week_scales is None:
            return 1.0 + self.growth * (step - 1) / 28.0
        week = np.minimum((step - 1) // 7, len(self.week_scales) - 1)
        return np.asarray(self.week_scales, dtype="float64")[week]


def estimate_dispersion(history: pd.DataFrame, config: DispersionConfig | None = None) -> pd.Series:
    """Per-series NB2 dispersion ``alpha`` (index ``unique_id``) from a validated, gap-free history."""
    cfg = config or DispersionConfig()
    alphas: dict[str, float] = {}
    weights: dict[str, float] = {}
    raw = []
    keep = cfg.window + cfg.level_window + cfg.lag
    tail = history.groupby(ID, sort=True, observed=True).tail(keep)
    for uid, y in tail.groupby(ID, sort=True, observed=True)[TARGET]:
        v = y.to_numpy(dtype="float64")
        n = v.size
        if n <= cfg.level_window + cfg.lag + 1:
            alphas[uid], weights[uid] = np.nan, 0.0
            continue
        c = np.concatenate([[0.0], np.cumsum(v)])
        w, d = cfg.level_window, cfg.lag
        t = np.arange(w + d, n)
        mu = (c[t - d + 1] - c[t - d + 1 - w]) / w
        obs = v[t]
        ok = mu > 0
        if ok.sum() < 7:
            alphas[uid], weights[uid] = np.nan, 0.0
            continue
        num = np.sum((obs[ok] - mu[ok]) ** 2 - mu[ok])
        den = np.sum(mu[ok] ** 2)
        a = max(num / den, MIN_ALPHA) if den > 0 else np.nan
        alphas[uid], weights[uid] = a, float(ok.sum())
        raw.append(a)
    a_series = pd.Series(alphas, dtype="float64")
    w_series = pd.Series(weights, dtype="float64")
    prior = float(np.median(raw)) if raw else 0.5
    a_series = a_series.fillna(prior)
    shrunk = (w_series * a_series + cfg.shrink_days * prior) / (w_series + cfg.shrink_days)
    shrunk.index.name = ID
    return (shrunk * cfg.scale).clip(lower=MIN_ALPHA).rename("dispersion")


def horizon_dispersion(alpha: np.ndarray, step: np.ndarray, growth: float) -> np.ndarray:
    """Alpha at horizon ``step`` (1-based): grows by ``growth`` per 28 days."""
    return alpha * (1.0 + growth * (step - 1) / 28.0)


def nb_params(mean: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy/numpy ``(n, p)`` for an NB2 with this mean and dispersion."""
    alpha = np.maximum(alpha, MIN_ALPHA)
    n = 1.0 / alpha
    p = n / (n + np.maximum(mean, 0.0))
    return n, p


def nb_quantiles(mean: np.ndarray, alpha: np.ndarray, quantiles=QUANTILES) -> np.ndarray:
    """Quantiles (rows x len(quantiles)) of NB2(mean, alpha); zero where the mean is zero. Never crossing."""
    mean = np.asarray(mean, dtype="float64")
    alpha = np.asarray(alpha, dtype="float64")
    n, p = nb_params(mean, alpha)
    qs = np.asarray(quantiles, dtype="float64")
    out = stats.nbinom.ppf(qs[None, :], n[:, None], p[:, None])
    out = np.where(mean[:, None] > 0, out, 0.0)
    out = np.nan_to_num(out, nan=0.0, posinf=0.0)
    return np.sort(np.maximum(out, 0.0), axis=1)


@dataclass
class DemandDistribution:
    """Per-day demand distribution for each series: NB2 with ``mean`` and ``dispersion`` (alpha).

    ``frame`` has columns ``unique_id, ds, mean, dispersion`` (``Var = mean + dispersion * mean**2``).
    ``model`` is the point model used, ``fallbacks`` maps series that fell back to the reason, ``cold_start``
    lists series forecast by the cold-start rate rule, ``failed_members`` maps each ensemble member that raised
    (and was replaced by the fallback for every series) to its error.
    """

    frame: pd.DataFrame
    model: str
    fallbacks: dict[str, str]
    cold_start: list[str]
    failed_members: dict[str, str] = field(default_factory=dict)

    def quantile_frame(self, quantiles=QUANTILES) -> pd.DataFrame:
        """``unique_id, ds, mean, q_...`` with non-negative, non-crossing quantiles."""
        q = nb_quantiles(self.frame["mean"].to_numpy(), self.frame["dispersion"].to_numpy(), quantiles)
        out = self.frame[[ID, TIME, "mean"]].copy()
        names = QUANTILE_COLUMNS if tuple(quantiles) == QUANTILES else tuple(f"q_{x}" for x in quantiles)
        for j, name in enumerate(names):
            out[name] = q[:, j]
        return out

    def sample_paths(self, n_paths: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """Draw ``n_paths`` demand paths per series. Days are drawn independently given the mean.

        Returns ``(index, paths)``: ``index`` is ``self.frame[[unique_id, ds]]`` (row order) and ``paths`` is an
        integer array of shape ``(n_paths, len(index))``.
        """
        rng = np.random.default_rng(seed)
        mean = self.frame["mean"].to_numpy(dtype="float64")
        n, p = nb_params(mean, self.frame["dispersion"].to_numpy(dtype="float64"))
        paths = rng.negative_binomial(n[None, :], p[None, :], size=(n_paths, mean.size))
        paths[:, mean <= 0] = 0
        return self.frame[[ID, TIME]].reset_index(drop=True), paths

    def lead_time_demand(
        self, lead_time_days: int | dict[str, int], quantiles=(0.5, 0.9, 0.95, 0.98), n_paths: int = 2000,
        seed: int = 0, batch_series: int = 500,
    ) -> pd.DataFrame:
        """Quantiles and mean of total demand over the first ``lead_time_days`` forecast days, per series.

        ``lead_time_days`` is one number or a ``{unique_id: days}`` mapping (missing ids: 0 days). Monte Carlo over
        ``n_paths`` NB paths, drawn ``batch_series`` series at a time so memory stays ``n_paths x batch`` rows.
        Returns ``unique_id, lead_time_days, mean, q_<level>...`` (one row per series, in frame order).
        """
        from scipy import sparse

        rng = np.random.default_rng(seed)
        frame = self.frame
        uids = frame[ID].to_numpy()
        codes, uniques = pd.factorize(uids)
        step = frame.groupby(ID, sort=False).cumcount().to_numpy() + 1
        if isinstance(lead_time_days, dict):
            lt_series = pd.Series(uniques).map(lead_time_days).fillna(0).astype(int).to_numpy()
        else:
            lt_series = np.full(len(uniques), int(lead_time_days))
        use = step <= lt_series[codes]
        mean = frame["mean"].to_numpy(dtype="float64")
        disp = frame["dispersion"].to_numpy(dtype="float64")
        out_q = np.zeros((len(uniques), len(quantiles)))
        for lo in range(0, len(uniques), batch_series):
            hi = min(lo + batch_series, len(uniques))
            rows = np.flatnonzero(use & (codes >= lo) & (codes < hi))
            if rows.size == 0:
                continue
            n, p = nb_params(mean[rows], disp[rows])
            draws = rng.negative_binomial(n[None, :], p[None, :], size=(n_paths, rows.size))
            draws[:, mean[rows] <= 0] = 0
            member = sparse.csr_matrix(
                (np.ones(rows.size), (np.arange(rows.size), codes[rows] - lo)), shape=(rows.size, hi - lo)
            )
            totals = np.asarray(member.T @ draws.T).T  # n_paths x series in batch
            out_q[lo:hi] = np.quantile(totals, quantiles, axis=0, method="inverted_cdf").T
        result = pd.DataFrame({ID: uniques, "lead_time_days": lt_series})
        result["mean"] = np.bincount(codes, weights=np.where(use, mean, 0.0), minlength=len(uniques))
        for j, q in enumerate(quantiles):
            result[f"q_{q}"] = out_q[:, j]
        return result
