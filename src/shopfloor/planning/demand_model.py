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
