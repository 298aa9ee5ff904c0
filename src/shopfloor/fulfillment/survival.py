"""Kaplan-Meier estimate of the promise score distribution from recent orders, in flight ones included.

A promise's score is (working hours from order to the start of its delivery day) / (the promise's basis); the
promised date for confidence ``q`` is the basis times the ``q``-quantile of recent scores. Scores of delivered orders
are known; an order still on its way at ``at`` is right-censored at its elapsed score: it will score at least that.
Counting those orders as censored (rather than waiting for their promised day) lets a slowdown show up as soon as
fewer recent orders arrive early, and keeps fast deliveries from being over-represented among what is known.
Orders are weighted by recency of placement (half-life), so the estimate follows the present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .stats import WorkClock


@dataclass(frozen=True, slots=True)
class ScoreCurve:
    """A step CDF of scores: ``cdf[i]`` is the estimated share of orders with score <= ``scores[i]``."""

    scores: np.ndarray
    cdf: np.ndarray
    weight: float  # recency-weighted number of orders behind it
    in_flight: float  # of which still on their way (censored)

    def quantile(self, q: float) -> float | None:
        """The smallest score whose estimated CDF reaches ``q`` (None when the censored tail leaves it unknown)."""
        if not len(self.cdf) or self.cdf[-1] < q - 1e-12:
            return None
        return float(self.scores[int(np.searchsorted(self.cdf, q - 1e-12))])


def score_curve(entries: Iterable[Sequence], at_h: float, clock: WorkClock, half_life_h: float
                ) -> ScoreCurve | None:
    """Weighted Kaplan-Meier over ``(placed_h, basis_h, delivered_h | None)`` entries, as known at ``at_h``."""
    return curve_from_array(entries_array(entries), at_h, clock, half_life_h)


def entries_array(entries: Iterable[Sequence]) -> np.ndarray:
    """``(placed_h, basis_h, delivered_h | None)`` rows as an ``n x 3`` float array (NaN: not delivered)."""
    rows = [(p, b, np.nan if d is None else d) for p, b, d in entries]
    return np.array(rows, dtype=float).reshape(-1, 3)


def curve_from_array(arr: np.ndarray, at_h: float, clock: WorkClock, half_life_h: float) -> ScoreCurve | None:
    """``score_curve`` over an ``entries_array``."""
    arr = arr[(arr[:, 0] < at_h) & (arr[:, 1] > 0)]
    if not len(arr):
        return None
    day_now = math.floor(at_h / 24.0) * 24.0
    placed, basis, delivered = arr[:, 0], arr[:, 1], arr[:, 2]
    event = ~np.isnan(delivered) & (delivered <= at_h)
    end = np.where(event, np.floor(np.nan_to_num(delivered) / 24.0) * 24.0, np.maximum(day_now, placed))
    score = np.maximum(_warp(clock, end) - _warp(clock, placed), 0.0) / basis
    weight = np.exp2((placed - at_h) / half_life_h)
    # At equal scores, deliveries come before censorings (a censored order is still at risk at its own score).
    order = np.lexsort((~event, score))
    score, event, weight = score[order], event[order], weight[order]
    at_risk = np.cumsum(weight[::-1])[::-1]
    hazard = np.where(event, weight / at_risk, 0.0)
    surv = np.cumprod(1.0 - hazard)
    return ScoreCurve(score[event], (1.0 - surv)[event], float(weight.sum()), float(weight[~event].sum()))


def _warp(clock: WorkClock, t: np.ndarray) -> np.ndarray:
    """``clock.at`` over an array of calendar hours."""
    w = clock.weekend_weight
    if w >= 1.0:
        return t
    u = t - 96.0  # hours since the first Monday after the epoch
    week = np.floor(u / 168.0)
    r = u - week * 168.0
    return week * (120.0 + 48.0 * w) + np.minimum(r, 120.0) + w * np.maximum(0.0, r - 120.0)
