"""Lead-time demand as a count distribution, built from a probabilistic daily forecast.

The restock policy only needs three things from "demand over the next n days": quantiles, the expected
shortfall E[(D - s)^+] (for fill-rate targets), and the mean. This module provides them behind one small
interface, fed either by

* per-day forecast means plus a negative-binomial dispersion per series (:class:`NegBinomialDemand`), or
* simulated sample paths from any probabilistic forecaster (:class:`EmpiricalDemand`).

The negative-binomial model is a Gamma-Poisson mixture with one shared level multiplier over the horizon:
``D_t ~ Poisson(mu_t * G)``, ``G ~ Gamma(shape=k, scale=1/k)``. The sum over any set of days is then exactly
``NB(mean=sum(mu), size=k)``, so every sub-horizon (the lead time, lead time + review, "until the next receipt")
comes from the same fitted ``k`` without a normal approximation. ``k = inf`` is plain Poisson.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


def _nbinom():
    """scipy.stats is loaded on first use: it is large, and importing the planning package must stay cheap."""
    from scipy import stats

    return stats.nbinom

#: Dispersions above this are treated as Poisson (numerically identical, avoids p -> 1 underflow).
POISSON_SIZE = 1e6


class CountDistribution(Protocol):
    """What the policy needs to know about demand over a fixed window of days."""

    @property
    def mean(self) -> float: ...

    def quantile(self, q: float) -> int:
        """Smallest integer x with P(D <= x) >= q."""

    def prob_exceeds(self, x: float) -> float:
        """P(D > x)."""

    def expected_shortfall(self, s: int) -> float:
        """E[(D - s)^+]: expected units short when ``s`` units are available."""


def _nb_params(mean: float | np.ndarray, size: float | np.ndarray):
    size = np.minimum(np.asarray(size, dtype=float), POISSON_SIZE)
    mean = np.asarray(mean, dtype=float)
    p = size / (size + np.maximum(mean, 1e-12))
    return size, p


@dataclass(frozen=True)
class NegBinomialDemand:
    """Demand over a window: negative binomial with ``mean`` and size (dispersion) ``size``.

    Variance is ``mean + mean**2 / size``. ``size=math.inf`` gives Poisson.
    """

    mean: float
    size: float

    def __post_init__(self) -> None:
        if not (self.mean >= 0 and math.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite number >= 0, got {self.mean!r}")
        if not self.size > 0:
            raise ValueError(f"size (dispersion) must be > 0, got {self.size!r}")

    @property
    def variance(self) -> float:
        return self.mean + (0.0 if math.isinf(self.size) else self.mean**2 / self.size)

    def _params(self) -> tuple[float, float]:
        # scipy's module-level functions, not a frozen distribution: freezing costs milliseconds per call
        n, p = _nb_params(self.mean, self.size)
        return float(n), float(p)

    def quantile(self, q: float) -> int:
        if not 0 <= q < 1:
            raise ValueError(f"quantile level must be in [0, 1), got {q!r}")
        if self.mean <= 0:
            return 0
        return int(_nbinom().ppf(q, *self._params()))

    def prob_exceeds(self, x: float) -> float:
        if self.mean <= 0:
            return 0.0 if x >= 0 else 1.0
        return float(_nbinom().sf(math.floor(x), *self._params()))

    def expected_shortfall(self, s: int) -> float:
        if self.mean <= 0 or s < 0:
            return max(self.mean - max(s, 0), 0.0) if s < 0 else 0.0
        return float(nb_expected_shortfall(np.array([self.mean]), np.array([self.size]), np.array([int(s)]))[0])


@dataclass(frozen=True)
class EmpiricalDemand:
    """Demand over a window from sample paths (rows = paths, columns = days) or window totals."""

    totals: np.ndarray

    @classmethod
    def from_sample_paths(cls, paths: np.ndarray | Sequence[Sequence[float]]) -> "EmpiricalDemand":
        arr = np.asarray(paths, dtype=float)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError("sample paths must be a non-empty 2-D array (paths x days)")
        if np.any(arr < 0) or not np.all(np.isfinite(arr)):
            raise ValueError("sample paths must be finite and non-negative")
        return cls(np.sort(arr.sum(axis=1)))

    @property
    def mean(self) -> float:
        return float(self.totals.mean())

    def quantile(self, q: float) -> int:
        if not 0 <= q < 1:
            raise ValueError(f"quantile level must be in [0, 1), got {q!r}")
        return int(math.ceil(np.quantile(self.totals, q, method="inverted_cdf")))

    def prob_exceeds(self, x: float) -> float:
        return float(np.mean(self.totals > x))

    def expected_shortfall(self, s: int) -> float:
        return float(np.mean(np.maximum(self.totals - s, 0.0)))


@dataclass(frozen=True)
class DemandOutlook:
    """A probabilistic daily demand forecast for one SKU x warehouse, starting tomorrow.

    Either ``daily_means`` + ``dispersion`` (negative-binomial size of the shared level multiplier; ``inf`` for
    Poisson), or ``sample_paths`` (paths x days). This is the seam where ``shopfloor.forecast`` plugs in: its
    mean column gives ``daily_means``; its quantiles or samples give ``dispersion`` / ``sample_paths``.
    """

    daily_means: np.ndarray
    dispersion: float = math.inf
    sample_paths: np.ndarray | None = None

    def __post_init__(self) -> None:
        means = np.asarray(self.daily_means, dtype=float)
        if means.ndim != 1 or np.any(means < 0) or not np.all(np.isfinite(means)):
            raise ValueError("daily_means must be a 1-D array of finite, non-negative numbers")
        object.__setattr__(self, "daily_means", means)
        if not self.dispersion > 0:
            raise ValueError(f"dispersion must be > 0, got {self.dispersion!r}")
        if self.sample_paths is not None:
            paths = np.asarray(self.sample_paths, dtype=float)
            if paths.ndim != 2 or paths.shape[1] < len(means):
                raise ValueError("sample_paths must be paths x days and cover every day of daily_means")
            object.__setattr__(self, "sample_paths", paths)

    @property
    def horizon(self) -> int:
        return len(self.daily_means)

    def over(self, start: int, days: int) -> CountDistribution:
        """Distribution of total demand over ``days`` days starting ``start`` days from tomorrow."""
        if start < 0 or days < 0:
            raise ValueError("start and days must be >= 0")
        end = start + days
        if end > self.horizon:
            raise ValueError(f"outlook covers {self.horizon} days, asked for day {end}")
        if self.sample_paths is not None:
            return EmpiricalDemand.from_sample_paths(self.sample_paths[:, start:end])
        return NegBinomialDemand(float(self.daily_means[start:end].sum()), self.dispersion)

    def lead_time_demand(self, lead_time_days: int, review_days: int = 0) -> CountDistribution:
        """Demand over the protection interval: the next ``lead_time_days + review_days`` days."""
        return self.over(0, lead_time_days + review_days)


def fill_rate_base_stock(
    protection: CountDistribution,
    lead_time: CountDistribution,
    review_mean: float,
    target_fill: float,
    *,
    max_level: int | None = None,
) -> int:
    """Smallest order-up-to level S whose expected fill rate over one review period reaches ``target_fill``.

    Units short in the review period are ``(D_{L+R} - S)^+ - (D_L - S)^+`` (exact for lost sales too when the
    position is raised to S at every review), so the fill rate is ``1 - (ES_{L+R}(S) - ES_L(S)) / E[D_R]``.
    The search starts at the target quantile of ``D_{L+R}`` and walks down/up from there, so S is always a
    quantile of the protection-interval demand distribution.
    """
    if not 0 < target_fill < 1:
        raise ValueError(f"target fill rate must be in (0, 1), got {target_fill!r}")
    if review_mean <= 0:
        return 0

    def fill(s: int) -> float:
        short = protection.expected_shortfall(s) - lead_time.expected_shortfall(s)
        return 1.0 - max(short, 0.0) / review_mean

    s = protection.quantile(target_fill)
    limit = max_level if max_level is not None else protection.quantile(0.999999) + 1
    while s > 0 and fill(s - 1) >= target_fill:
        s -= 1
    while fill(s) < target_fill and s < limit:
        s += 1
    return s


def nb_expected_shortfall(mean: np.ndarray, size: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Closed-form E[(D - s)^+] for D ~ NB(mean, size), elementwise.

    Uses ``d * pmf(d; r, p) = mean * pmf(d - 1; r + 1, p)``, so ``E[D 1{D >= s}] = mean * P(D' >= s - 1)`` with
    ``D' ~ NB(r + 1, p)``, and ``E[(D - s)^+] = mean * P(D' > s - 2) - s * P(D > s - 1)``.
    """
    mean = np.asarray(mean, dtype=float)
    s = np.asarray(s, dtype=float)
    r, p = _nb_params(mean, size)
    out = mean * _nbinom().sf(s - 2, r + 1, p) - s * _nbinom().sf(s - 1, r, p)
    return np.where(mean > 0, np.maximum(out, 0.0), np.maximum(-s, 0.0))


def nb_fill_rate_base_stock_batch(
    mean_protection: np.ndarray,
    mean_lead: np.ndarray,
    size: np.ndarray,
    target_fill: float,
) -> np.ndarray:
    """Vectorised :func:`fill_rate_base_stock` for many series under the negative-binomial model.

    ``mean_protection`` / ``mean_lead`` are the expected demand over L+R and over L days, ``size`` the
    per-series dispersion. Returns the smallest integer order-up-to level per series whose expected fill rate
    reaches ``target_fill`` (a bisection on S; the fill rate is non-decreasing in S). Used by the backtest
    (hundreds of series, every day), where a Python loop per series would dominate the run time.
    """
    if not 0 < target_fill < 1:
        raise ValueError(f"target fill rate must be in (0, 1), got {target_fill!r}")
    mp = np.asarray(mean_protection, dtype=float)
    ml = np.asarray(mean_lead, dtype=float)
    k = np.broadcast_to(np.asarray(size, dtype=float), mp.shape)
    review = np.maximum(mp - ml, 0.0)
    out = np.zeros(mp.shape, dtype=np.int64)
    live = (review > 1e-9) & (mp > 1e-9)
    if not live.any():
        return out
    mp, ml, k, review = mp[live], ml[live], k[live], review[live]

    def fill(level: np.ndarray) -> np.ndarray:
        short = nb_expected_shortfall(mp, k, level) - nb_expected_shortfall(ml, k, level)
        return 1.0 - np.maximum(short, 0.0) / review

    var = mp + mp * mp / np.minimum(k, POISSON_SIZE)
    hi = np.ceil(mp + 50.0 * np.sqrt(var) + 10.0)
    lo = np.full(mp.shape, -1.0)  # fill(lo) < target is the invariant (level -1 is never enough)
    # invariant: fill(hi) >= target (50 sd above the mean of a count distribution)
    while np.any(hi - lo > 1):
        mid = np.floor((lo + hi) / 2)
        ok = fill(mid) >= target_fill
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    out[live] = hi.astype(np.int64)
    return out
