"""Lost-sales, periodic-review inventory simulation for restock backtests.

Timeline of one simulated day ``t`` (all series at once, vectorised):

1. receipts due on day ``t`` arrive (an order placed at the end of day ``t - L - 1`` arrives overnight);
2. demand ``d_t`` is served from on-hand; what cannot be served is lost (no backorders);
3. end of day: the policy *observes* ``d_t`` and the units sold (the only way either reaches it; the baseline's
   ``feed`` picks which it learns from) and, on review days, returns an
   order-up-to level S; the order ``S - inventory position`` (or the policy's own ``shortfall(S, position)``,
   e.g. capped base stock; then rounded for MOQ / pack size) is placed and arrives at the start of day
   ``t + L + 1``.

So the stock raised at the end of day t must cover days t+1 .. t+L+R: the protection interval is L + R days,
the same convention as the classic ``z * sigma * sqrt(L + R)`` formula.

The simulator never hands a policy any demand it has not already lived through, which is what makes the
backtest free of look-ahead by construction; ``tests/unit/test_restock_sim.py`` also checks it empirically.
It runs the baseline; the shipped policy is simulated through its agent protocol
(:func:`~shopfloor.planning.restock_backtest.simulate_agent`, same timeline), where it sees sales, not demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats

from .restock import round_order_quantities


class ReviewPolicy(Protocol):
    """A replenishment policy driven one day at a time."""

    def observe(self, demand: np.ndarray, weekday: int, sales: np.ndarray | None = None) -> None:
        """Learn the demand (and, once simulating, the units actually sold) of the day that just ended."""

    def order_up_to(self) -> np.ndarray:
        """Order-up-to level per series for the protection interval starting tomorrow."""


@dataclass
class SimulationResult:
    """Per-series totals over the scored days plus the day-by-day decisions (for the look-ahead test)."""

    demand: np.ndarray  # per series, scored days
    sales: np.ndarray
    on_hand_sum: np.ndarray  # sum over scored days of end-of-day on-hand
    scored_days: int
    orders: np.ndarray  # (n_series, n_days) units ordered at the end of each day
    levels: np.ndarray  # (n_series, n_days) order-up-to level used at the end of each day

    @property
    def fill_rate(self) -> float:
        tot = float(self.demand.sum())
        return float(self.sales.sum()) / tot if tot > 0 else 1.0

    @property
    def avg_on_hand(self) -> float:
        """Average end-of-day on-hand units per series-day."""
        return float(self.on_hand_sum.sum()) / (len(self.on_hand_sum) * max(self.scored_days, 1))

    def summary(self) -> dict:
        return {
            "fill_rate": round(self.fill_rate, 5),
            "avg_on_hand": round(self.avg_on_hand, 4),
            "lost_units": int(self.demand.sum() - self.sales.sum()),
            "demand_units": int(self.demand.sum()),
        }


def simulate(
    demand: np.ndarray,
    weekdays: np.ndarray,
    policy: ReviewPolicy,
    *,
    lead_time: int,
    review_days: int = 1,
    start: int,
    warmup: int = 0,
    moq: int = 1,
    pack_size: int = 1,
    initial_on_hand: np.ndarray | None = None,
) -> SimulationResult:
    """Run ``policy`` over ``demand`` (series x days); decisions start at day ``start``.

    Days before ``start`` are only fed to the policy (history to fit on). The first ``warmup`` simulated days
    are not scored, so the starting stock (``initial_on_hand``, default the policy's first order-up-to level;
    nothing in transit) washes out.
    """
    demand = np.asarray(demand)
    n, days = demand.shape
    if lead_time < 0 or review_days < 1:
        raise ValueError("lead_time must be >= 0 and review_days >= 1")
    if not 0 < start < days:
        raise ValueError("start must leave history before it and days after it")
    for t in range(start):
        policy.observe(demand[:, t], int(weekdays[t]), None)
    shortfall = getattr(policy, "shortfall", None)
    level = np.asarray(policy.order_up_to(), dtype=np.int64)
    store = LostSalesStore(level if initial_on_hand is None else np.asarray(initial_on_hand), days, lead_time)
    orders = np.zeros((n, days), dtype=np.int64)
    levels = np.zeros((n, days), dtype=np.int64)
    for t in range(start, days):
        sold = store.serve_day(t, demand[:, t], scored=t >= start + warmup)
        policy.observe(demand[:, t], int(weekdays[t]), sold)
        if (t - start) % review_days == 0:
            level = np.asarray(policy.order_up_to(), dtype=np.int64)
            position = store.on_hand + store.pipeline
            raw = shortfall(level, position) if shortfall is not None else level - position
            qty = round_order_quantities(raw, moq, pack_size)
            store.order(t, qty)
            orders[:, t] = qty
            levels[:, t] = level
    return SimulationResult(store.tot_d, store.tot_s, store.oh_sum, max(days - start - warmup, 0), orders, levels)


class LostSalesStore:
    """The simulated store both simulators share: receipts arrive at the start of a day, demand is served from
    stock and what cannot be served is lost; scored days add to the demand, sales and end-of-day on-hand totals."""

    def __init__(self, on_hand: np.ndarray, days: int, lead_time: int) -> None:
        n = len(on_hand)
        self.on_hand = np.asarray(on_hand).astype(np.int64).copy()
        self.arrivals = np.zeros((n, days + lead_time + 2), dtype=np.int64)
        self.pipeline = np.zeros(n, dtype=np.int64)
        self.lead_time = lead_time
        self.tot_d, self.tot_s, self.oh_sum = np.zeros(n), np.zeros(n), np.zeros(n)

    def serve_day(self, t: int, demand: np.ndarray, scored: bool) -> np.ndarray:
        """Receive day ``t``'s arrivals, sell what stock allows, and return the units sold."""
        self.on_hand += self.arrivals[:, t]
        self.pipeline -= self.arrivals[:, t]
        d = demand.astype(np.int64)
        sold = np.minimum(self.on_hand, d)
        self.on_hand -= sold
        if scored:
            self.tot_d += d
            self.tot_s += sold
            self.oh_sum += self.on_hand
        return sold

    def order(self, t: int, qty: np.ndarray | int, index: int | slice = slice(None)) -> None:
        """Place ``qty`` at the end of day ``t``; it arrives at the start of day ``t + lead_time + 1``."""
        arrival_day = t + self.lead_time + 1
        if arrival_day < self.arrivals.shape[1]:
            self.arrivals[index, arrival_day] += qty
        self.pipeline[index] += qty


BASELINE_FEEDS = ("demand", "sales")


class NormalSafetyStockPolicy:
    """The classic baseline: moving-average demand plus ``z * sigma * sqrt(L + R)`` safety stock.

    ``feed`` says what the moving average and sigma are computed on once the simulation runs:

    - ``"demand"`` (default): the true demand, stock-outs included. No store observes it; it is the stricter
      comparison (the baseline learns from the demand that was lost).
    - ``"sales"``: the units actually sold, as a store running the textbook formula on its sales records would.
      A day that sold out counts only what was sold, so demand lost to a stock-out never reaches it. History days
      before the simulation (passed without ``sales``) are the recorded data, the same rows the agent gets as its
      history.
    """

    def __init__(self, n_series: int, *, lead_time: int, review_days: int, z: float, window: int = 28,
                 feed: str = "demand") -> None:
        if feed not in BASELINE_FEEDS:
            raise ValueError(f"feed must be one of {BASELINE_FEEDS}, got {feed!r}")
        self.buf = np.zeros((n_series, window))
        self.window = window
        self.seen = 0
        self.protection = lead_time + review_days
        self.z = z
        self.feed = feed

    @classmethod
    def for_service_level(cls, n_series: int, *, lead_time: int, review_days: int, service_level: float,
                          window: int = 28, feed: str = "demand") -> "NormalSafetyStockPolicy":
        return cls(n_series, lead_time=lead_time, review_days=review_days,
                   z=float(stats.norm.ppf(service_level)), window=window, feed=feed)

    def observe(self, demand: np.ndarray, weekday: int, sales: np.ndarray | None = None) -> None:
        seen = sales if self.feed == "sales" and sales is not None else demand
        self.buf[:, self.seen % self.window] = seen
        self.seen += 1

    def order_up_to(self) -> np.ndarray:
        filled = min(self.seen, self.window)
        hist = self.buf[:, :filled] if filled else np.zeros((self.buf.shape[0], 1))
        mu = hist.mean(axis=1)
        sigma = hist.std(axis=1, ddof=1) if filled > 1 else np.zeros(len(mu))
        level = mu * self.protection + self.z * sigma * np.sqrt(self.protection)
        return np.maximum(np.ceil(level), 0).astype(np.int64)
