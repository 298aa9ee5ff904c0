"""Lost-sales, periodic-review inventory simulation for restock backtests.

Timeline of one simulated day ``t`` (all series at once, vectorised):

1. receipts due on day ``t`` arrive (an order placed at the end of day ``t - L - 1`` arrives overnight);
2. demand ``d_t`` is served from on-hand; what cannot be served is lost (no backorders);
3. end of day: the policy *observes* ``d_t`` (the only way demand reaches it) and, on review days, returns an
   order-up-to level S; the order ``S - inventory position`` (or the policy's own ``shortfall(S, position)``,
   e.g. capped base stock; then rounded for MOQ / pack size) is placed and arrives at the start of day
   ``t + L + 1``.

So the stock raised at the end of day t must cover days t+1 .. t+L+R: the protection interval is L + R days,
the same convention as the classic ``z * sigma * sqrt(L + R)`` formula.

The simulator never hands a policy any demand it has not already lived through, which is what makes the
backtest free of look-ahead by construction; ``tests/unit/test_restock_sim.py`` also checks it empirically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats

from .demand_model import DemandModelConfig, HorizonErrorVariance, RollingDemandModel
from .lead_time import _nb_params
from .restock import DEFAULT_ORDER_CAP, order_shortfall, round_order_quantities


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
) -> SimulationResult:
    """Run ``policy`` over ``demand`` (series x days); decisions start at day ``start``.

    Days before ``start`` are only fed to the policy (history to fit on). The first ``warmup`` simulated days
    are not scored, so the starting stock (the first order-up-to level, nothing in transit) washes out.
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
    on_hand = level.astype(np.int64).copy()
    arrivals = np.zeros((n, days + lead_time + 2), dtype=np.int64)
    pipeline = np.zeros(n, dtype=np.int64)
    tot_d = np.zeros(n)
    tot_s = np.zeros(n)
    oh_sum = np.zeros(n)
    orders = np.zeros((n, days), dtype=np.int64)
    levels = np.zeros((n, days), dtype=np.int64)
    for t in range(start, days):
        on_hand += arrivals[:, t]
        pipeline -= arrivals[:, t]
        d = demand[:, t].astype(np.int64)
        sold = np.minimum(on_hand, d)
        on_hand -= sold
        if t >= start + warmup:
            tot_d += d
            tot_s += sold
            oh_sum += on_hand
        policy.observe(demand[:, t], int(weekdays[t]), sold)
        if (t - start) % review_days == 0:
            level = np.asarray(policy.order_up_to(), dtype=np.int64)
            position = on_hand + pipeline
            raw = shortfall(level, position) if shortfall is not None else level - position
            qty = round_order_quantities(raw, moq, pack_size)
            arrival_day = t + lead_time + 1
            if arrival_day < arrivals.shape[1]:
                arrivals[:, arrival_day] += qty
            pipeline += qty
            orders[:, t] = qty
            levels[:, t] = level
    return SimulationResult(tot_d, tot_s, oh_sum, max(days - start - warmup, 0), orders, levels)


class DemandMeanModel(Protocol):
    """What the policy needs from a demand model (``RollingDemandModel``, ``PeriodicForecastModel``)."""

    def observe(self, demand: np.ndarray, weekday: int) -> None: ...

    def daily_means(self, days: int) -> np.ndarray: ...

    def dispersion(self) -> np.ndarray: ...


SPREADS = ("error_variance", "nb_shrunk")


class ForecastQuantilePolicy:
    """Our policy: order up to a quantile of negative-binomial lead-time(+review) demand.

    The mean comes from ``demand_model`` (default: the SES x weekday :class:`RollingDemandModel`; the
    backtest's default is :class:`~shopfloor.planning.forecast_outlook.PeriodicForecastModel`, the forecast
    package blended with SES). The spread is ``spread``:

    * ``"error_variance"`` (default): the variance of the protection-interval total is the exponentially
      weighted mean square of the mean model's *own* past (L+R)-day errors (:class:`HorizonErrorVariance`),
      turned into an NB size for the current mean;
    * ``"nb_shrunk"``: the older estimate, ``Var = M + M**2 / k`` with ``k`` from the same errors by moments,
      shrunk to the pooled value (only available for models with a ``dispersion()``).

    Orders follow capped base stock (:func:`~shopfloor.planning.restock.order_shortfall`, ``order_cap``; 0 =
    plain ``S - position``), the same rule the planner uses.

    All series share one quantile level ``alpha`` (the critical ratio), which is how a portfolio fill-rate
    target is met with the least stock when every unit costs the same to hold. ``alpha`` is steered towards
    the fill-rate target by an integral controller on the fill rate the policy has *already* achieved (sales
    over demand, exponentially weighted with ``fill_halflife`` days), in logit space with ``gain``. Lost sales
    make the backorder fill-rate formula pessimistic, so a closed-form target would overshoot; feedback on
    realised fill does not need that formula and only ever looks backwards.
    """

    def __init__(
        self,
        n_series: int,
        *,
        lead_time: int,
        review_days: int,
        target_fill: float,
        config: DemandModelConfig | None = None,
        demand_model: DemandMeanModel | None = None,
        spread: str = "error_variance",
        error_halflife: float = 90.0,
        calibrate_from: int = 0,
        gain: float = 0.5,
        fill_halflife: float = 14.0,
        initial_level: float | None = None,
        order_cap: float = DEFAULT_ORDER_CAP,
    ) -> None:
        if not 0 < target_fill < 1:
            raise ValueError(f"target fill rate must be in (0, 1), got {target_fill!r}")
        if spread not in SPREADS:
            raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
        protection = lead_time + review_days
        self.model = demand_model if demand_model is not None else RollingDemandModel(n_series, protection, config)
        self.errors = HorizonErrorVariance(n_series, protection, halflife=error_halflife, start_day=calibrate_from)
        self.spread = spread
        self.lead_time = lead_time
        self.review_days = review_days
        self.target_fill = target_fill
        self.gain = gain
        self._decay = 0.5 ** (1.0 / fill_halflife)
        self._sold = 0.0
        self._demanded = 0.0
        level = initial_level if initial_level is not None else target_fill
        self._logit = float(np.log(level / (1 - level)))
        self.level_history: list[float] = []
        self._protect_mean = np.zeros(n_series)
        self._lead_mean = np.zeros(n_series)
        self._reorder_point = np.zeros(n_series, dtype=np.int64)
        self.order_cap = order_cap

    @property
    def quantile_level(self) -> float:
        return float(np.clip(1.0 / (1.0 + np.exp(-self._logit)), 0.5, 0.9995))

    def observe(self, demand: np.ndarray, weekday: int, sales: np.ndarray | None = None) -> None:
        self.model.observe(demand, weekday)
        means = self.model.daily_means(self.lead_time + self.review_days)
        self._protect_mean = means.sum(axis=1)
        self._lead_mean = means[:, : self.lead_time].sum(axis=1)
        self.errors.record(demand, self._protect_mean)
        if sales is not None:
            self._sold = self._decay * self._sold + float(np.sum(sales))
            self._demanded = self._decay * self._demanded + float(np.sum(demand))
            if self._demanded > 0:
                achieved = self._sold / self._demanded
                self._logit = float(np.clip(self._logit + self.gain * (self.target_fill - achieved), 0.0, 8.0))

    def dispersion(self) -> np.ndarray:
        """NB size of the protection-interval demand per series, for the current mean."""
        if self.spread == "nb_shrunk":
            return self.model.dispersion()
        return self.errors.dispersion(self._protect_mean)

    def order_up_to(self) -> np.ndarray:
        m_protect = self._protect_mean
        alpha = self.quantile_level
        self.level_history.append(alpha)
        size = self.dispersion()
        r, p = _nb_params(m_protect, size)
        r_lead, p_lead = _nb_params(self._lead_mean, size)
        with np.errstate(invalid="ignore"):
            level = stats.nbinom.ppf(alpha, r, p)
            rop = stats.nbinom.ppf(alpha, r_lead, p_lead) if self.order_cap else np.zeros(len(level))
        self._reorder_point = np.where(self._lead_mean > 0, np.nan_to_num(rop), 0).astype(np.int64)
        return np.where(m_protect > 0, np.nan_to_num(level), 0).astype(np.int64)

    def shortfall(self, level: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Units to order for ``level`` (from :meth:`order_up_to`) under capped base stock."""
        return order_shortfall(level, self._reorder_point, position, lead_time_days=self.lead_time,
                               review_days=self.review_days, order_cap=self.order_cap)


class NormalSafetyStockPolicy:
    """The classic baseline: moving-average demand plus ``z * sigma * sqrt(L + R)`` safety stock."""

    def __init__(self, n_series: int, *, lead_time: int, review_days: int, z: float, window: int = 28) -> None:
        self.buf = np.zeros((n_series, window))
        self.window = window
        self.seen = 0
        self.protection = lead_time + review_days
        self.z = z

    @classmethod
    def for_service_level(cls, n_series: int, *, lead_time: int, review_days: int, service_level: float,
                          window: int = 28) -> "NormalSafetyStockPolicy":
        return cls(n_series, lead_time=lead_time, review_days=review_days,
                   z=float(stats.norm.ppf(service_level)), window=window)

    def observe(self, demand: np.ndarray, weekday: int, sales: np.ndarray | None = None) -> None:
        self.buf[:, self.seen % self.window] = demand
        self.seen += 1

    def order_up_to(self) -> np.ndarray:
        filled = min(self.seen, self.window)
        hist = self.buf[:, :filled] if filled else np.zeros((self.buf.shape[0], 1))
        mu = hist.mean(axis=1)
        sigma = hist.std(axis=1, ddof=1) if filled > 1 else np.zeros(len(mu))
        level = mu * self.protection + self.z * sigma * np.sqrt(self.protection)
        return np.maximum(np.ceil(level), 0).astype(np.int64)
