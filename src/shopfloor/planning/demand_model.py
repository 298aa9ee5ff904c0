"""A small rolling probabilistic demand model for restock decisions (until ``shopfloor.forecast`` feeds us).

Per series, updated one day at a time so that a backtest can never look ahead:

* **mean**: simple exponential smoothing of daily demand (``alpha``) times a day-of-week profile taken from
  the trailing ``profile_days`` (shrunk towards flat by ``profile_prior_days`` pseudo-days per weekday);
* **dispersion**: the negative-binomial size ``k`` of the shared-level Gamma-Poisson model (see
  :mod:`shopfloor.planning.lead_time`), estimated by moments from this model's *own past horizon errors*:
  for every past origin s whose horizon has fully happened, ``e_s = D(s+1..s+H) - M_s`` and
  ``1/k = max(0, sum w(e^2 - M)) / sum w M^2`` with exponential weights (half-life ``dispersion_halflife``).
  The estimate is shrunk towards the pooled estimate over all series so thin series stay sane.

Only data observed up to the current day enters any number, which is what the no-look-ahead test checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DemandModelConfig:
    """Knobs of :class:`RollingDemandModel` (defaults were chosen before looking at any test window)."""

    alpha: float = 0.05
    profile_days: int = 84
    profile_prior_days: float = 4.0
    dispersion_halflife: float = 180.0
    dispersion_prior_weight: float = 0.25
    default_dispersion: float = 2.0
    min_size: float = 0.05


class RollingDemandModel:
    """Vectorised over ``n_series``; call :meth:`observe` once per day, then ask :meth:`daily_means`.

    ``horizon`` is the window (days) whose total-demand error calibrates the dispersion; for a restock policy
    that is lead time + review period.
    """

    def __init__(self, n_series: int, horizon: int, config: DemandModelConfig | None = None) -> None:
        if n_series < 1 or horizon < 1:
            raise ValueError("n_series and horizon must be >= 1")
        self.cfg = config or DemandModelConfig()
        self.n = n_series
        self.horizon = horizon
        self.days_seen = 0
        self.level = np.zeros(n_series)
        self._profile_buf = np.zeros((n_series, self.cfg.profile_days))
        self._profile_wd = np.full(self.cfg.profile_days, -1, dtype=np.int64)
        # running per-weekday totals over the ring buffer, so the profile costs O(n) per day, not O(n * days)
        self._wd_sum = np.zeros((n_series, 7))
        self._wd_cnt = np.zeros(7, dtype=np.int64)
        # past forecasts of the horizon total (ring, indexed by origin day) and the realised running totals
        self._pending = np.zeros((n_series, horizon))  # forecast made `horizon - j` days ago
        self._pending_demand = np.zeros((n_series, horizon))
        self._pending_valid = np.zeros(horizon, dtype=bool)
        self._acc_num = np.zeros(n_series)
        self._acc_den = np.zeros(n_series)
        self._decay = 0.5 ** (1.0 / self.cfg.dispersion_halflife)
        self._last_weekday = -1

    # --- updates -------------------------------------------------------------------------------------------
    def observe(self, demand: np.ndarray, weekday: int) -> None:
        """Feed the demand of the day that just ended (``weekday`` 0..6)."""
        d = np.asarray(demand, dtype=float)
        if d.shape != (self.n,):
            raise ValueError(f"expected {self.n} demand values, got shape {d.shape}")
        if np.any(d < 0) or not np.all(np.isfinite(d)):
            raise ValueError("demand must be finite and non-negative")
        if self.days_seen == 0:
            self.level = d.copy()
        else:
            self.level = self.cfg.alpha * d + (1 - self.cfg.alpha) * self.level
        slot = self.days_seen % self.cfg.profile_days
        old_wd = self._profile_wd[slot]
        if old_wd >= 0:
            self._wd_sum[:, old_wd] -= self._profile_buf[:, slot]
            self._wd_cnt[old_wd] -= 1
        self._profile_buf[:, slot] = d
        self._profile_wd[slot] = weekday
        self._wd_sum[:, weekday] += d
        self._wd_cnt[weekday] += 1
        self._last_weekday = weekday
        # every pending origin accumulates today's demand; the oldest one is complete after H days
        self._pending_demand += d[:, None]
        slot_h = self.days_seen % self.horizon
        # the origin in slot_h was made H days ago (before today's update) -> its window is complete now
        if self._pending_valid[slot_h]:
            m = self._pending[:, slot_h]
            e = self._pending_demand[:, slot_h] - m
            self._acc_num = self._decay * self._acc_num + (e * e - m)
            self._acc_den = self._decay * self._acc_den + m * m
        self.days_seen += 1
        # record today's forecast of the next H days as a new pending origin in the freed slot
        self._pending[:, slot_h] = self.daily_means(self.horizon).sum(axis=1)
        self._pending_demand[:, slot_h] = 0.0
        self._pending_valid[slot_h] = True

    # --- queries -------------------------------------------------------------------------------------------
    def weekday_profile(self) -> np.ndarray:
        """(n_series, 7) multiplicative weekday factors averaging 1 over the week."""
        filled = int(self._wd_cnt.sum())
        if filled == 0:
            return np.ones((self.n, 7))
        overall = self._wd_sum.sum(axis=1) / filled
        prior = self.cfg.profile_prior_days
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = (self._wd_sum + prior * overall[:, None]) / ((self._wd_cnt[None, :] + prior) * overall[:, None])
        prof = np.where(overall[:, None] > 0, prof, 1.0)
        return prof / prof.mean(axis=1, keepdims=True)

    def daily_means(self, days: int) -> np.ndarray:
        """(n_series, days) expected demand for each of the next ``days`` days (tomorrow first)."""
        prof = self.weekday_profile()
        start = (self._last_weekday + 1) % 7 if self._last_weekday >= 0 else 0
        idx = (start + np.arange(days)) % 7
        return np.maximum(self.level[:, None] * prof[:, idx], 0.0)

    def dispersion(self) -> np.ndarray:
        """Per-series negative-binomial size k of the horizon total (``inf`` = Poisson)."""
        cfg = self.cfg
        num, den = self._acc_num, self._acc_den
        pooled_inv = max(num.sum(), 0.0) / den.sum() if den.sum() > 0 else 1.0 / cfg.default_dispersion
        # shrink each series' 1/k towards the pooled value with a weight worth a share of the average evidence
        prior_w = cfg.dispersion_prior_weight * (den.mean() if den.size and den.mean() > 0 else 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = (np.maximum(num, 0.0) + prior_w * pooled_inv) / (den + prior_w)
        inv = np.where(np.isfinite(inv), inv, pooled_inv)
        with np.errstate(divide="ignore"):
            size = np.where(inv > 0, 1.0 / inv, math.inf)
        return np.maximum(size, cfg.min_size)


class HorizonErrorVariance:
    """Spread of protection-interval demand from a mean model's *own* out-of-sample errors.

    Each day the caller records the demand of the day that just ended and the model's forecast of the total
    over the next ``horizon`` days. Once a forecast's window has fully happened its error
    ``e = D(s+1..s+H) - M_s`` enters a per-series exponentially weighted mean of ``e**2`` (half-life
    ``halflife`` days). :meth:`variance` is that mean: the variance of the horizon total, *not* rescaled by the
    current forecast. On the M5 backtest this beat the shared-level NB estimate (``Var = M + M**2 / k``, which
    inflates the spread whenever the forecast is high) by 3-10 % of stock at equal fill.

    The result is nudged towards recent volatility: with ``recent_weight`` w it is
    ``own**(1 - w) * (horizon * var_recent)**w``, ``var_recent`` the sample variance of the last
    ``recent_days`` daily demands (the baseline's sigma). w = 0.25 held 0.5-1.5 % less stock at equal fill than
    w = 0 on both M5 windows we tried (2014-15 and 2015-16); w = 0.5 was better on one and worse on the other.

    Series with no completed window yet fall back to ``M + M**2 * r`` with ``r`` the pooled relative excess
    variance over the series that have errors (``1 / default_dispersion`` while nobody has).
    Forecasts recorded before day ``start_day`` are ignored (the backtest starts calibrating where its
    forecasts start).
    """

    def __init__(self, n_series: int, horizon: int, *, halflife: float = 90.0, start_day: int = 0,
                 default_dispersion: float = 2.0, recent_days: int = 28, recent_weight: float = 0.25) -> None:
        if n_series < 1 or horizon < 1 or halflife <= 0 or recent_days < 2:
            raise ValueError("n_series, horizon and halflife must be positive, recent_days >= 2")
        if not 0 <= recent_weight <= 1:
            raise ValueError(f"recent_weight must be in [0, 1], got {recent_weight!r}")
        self.recent_weight = recent_weight
        self._recent = np.zeros((n_series, recent_days))
        self.n = n_series
        self.horizon = horizon
        self.start_day = start_day
        self.default_dispersion = default_dispersion
        self.days_seen = 0
        self._decay = 0.5 ** (1.0 / halflife)
        self._forecast = np.zeros((n_series, horizon))
        self._demand = np.zeros((n_series, horizon))
        self._valid = np.zeros(horizon, dtype=bool)
        self._sq = np.zeros(n_series)  # decayed sum of e**2
        self._w = np.zeros(n_series)  # decayed count
        self._rel_num = np.zeros(n_series)  # decayed sum of e**2 - M (for the pooled fallback)
        self._rel_den = np.zeros(n_series)  # decayed sum of M**2

    def record(self, demand: np.ndarray, forecast_total: np.ndarray) -> None:
        """Demand of the day that just ended, then the forecast of the next ``horizon`` days' total."""
        d = np.asarray(demand, dtype=float)
        self._recent[:, self.days_seen % self._recent.shape[1]] = d
        self._demand += d[:, None]
        slot = self.days_seen % self.horizon
        if self._valid[slot]:  # made `horizon` days ago: its window ended today
            m = self._forecast[:, slot]
            e = self._demand[:, slot] - m
            self._sq = self._decay * self._sq + e * e
            self._w = self._decay * self._w + 1.0
            self._rel_num = self._decay * self._rel_num + (e * e - m)
            self._rel_den = self._decay * self._rel_den + m * m
        self._forecast[:, slot] = np.asarray(forecast_total, dtype=float)
        self._demand[:, slot] = 0.0
        self._valid[slot] = self.days_seen >= self.start_day
        self.days_seen += 1

    def variance(self, mean_total: np.ndarray) -> np.ndarray:
        """Variance of the next ``horizon`` days' demand total, per series (never below the Poisson ``M``)."""
        m = np.asarray(mean_total, dtype=float)
        den = self._rel_den.sum()
        rel = max(self._rel_num.sum(), 0.0) / den if den > 0 else 1.0 / self.default_dispersion
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(self._w > 0, self._sq / self._w, m + rel * m * m)
        w = self.recent_weight
        if w > 0 and self.days_seen >= self._recent.shape[1]:
            recent = self.horizon * self._recent.var(axis=1, ddof=1)
            own = own ** (1 - w) * recent**w
        return np.maximum(own, m)

    def dispersion(self, mean_total: np.ndarray, min_size: float = 0.05) -> np.ndarray:
        """The same spread as a negative-binomial size ``k`` for a window with mean ``mean_total``."""
        m = np.asarray(mean_total, dtype=float)
        excess = self.variance(m) - m
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(excess > 1e-9 * np.maximum(m, 1.0), m * m / excess, math.inf)
        return np.maximum(np.nan_to_num(size, nan=math.inf, posinf=math.inf), min_size)
