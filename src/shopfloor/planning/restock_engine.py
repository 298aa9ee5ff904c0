"""The shipped restock policy: one incremental engine for `restock plan`, `restock agent` and the backtest.

Vectorised over SKUs and fed one day at a time with what a store observes (units *sold* and, when known, the stock
left at close). Every caller goes through :class:`RestockEngine`: the planner replays its order history through
it, the agent feeds it one JSON line per day, and the backtest drives the agent's engine in a lost-sales
simulation, so the policy that is measured is the policy that is shipped.

Per SKU:

* **Censoring.** A day that closed with zero stock only tells us demand was *at least* the units sold. Such a day
  enters the model as ``E[D | D >= sales]`` under the current negative-binomial day forecast, never at face value;
  a day whose stock at close is unknown (order history without stock records) counts as uncensored.
* **Mean.** A level (exponential smoothing of de-seasonalised daily demand, half-life ``level_halflife``) times a
  day-of-week profile (exponentially weighted per-weekday means, shrunk towards the panel's own weekday profile).
  One update per day, O(SKUs).
* **Spread.** The variance of demand over the protection interval (lead time + review) is the exponentially
  weighted mean square of the model's *own* past protection-interval errors, shrunk towards a pooled
  ``M + c*M**2`` law for SKUs with little evidence, and turned into a negative-binomial size.
* **Order rule.** Order up to the ``alpha`` quantile of protection-interval demand under capped base stock
  (:func:`~shopfloor.planning.restock.order_shortfall`); all SKUs share one ``alpha`` (the critical ratio: the least
  stock for a portfolio fill rate when every unit costs the same to hold). ``allocation="marginal"`` instead shares
  one shortage penalty and sets each SKU's level by marginal analysis (:func:`marginal_order_up_to`); measured,
  it held no less stock, so it is off by default.
* **Day of month** (optional, ``month_halflife``): one store-wide factor per day of the month, shrunk towards 1 by
  its own noise (:meth:`RestockEngine.month_factors`).
* **Fill-rate target.** ``alpha`` starts where the negative-binomial fill formula, in its lost-sales form
  (:func:`lost_sales_shortfall`), says the target is met and is
  then steered by an integral controller on the *observed* fill rate: units sold over units sold plus the
  estimated units lost on stocked-out days (the censored-demand estimate above). Lost demand itself is never seen.
* **What censoring hides.** On lumpy (wholesale-like) demand a sold-out day hides far more than the NB tail says: a
  400-unit order meeting 50 units on the shelf is recorded as a 50-unit sale. Before the history is fed, a copy of
  the engine runs a sales-only lost-sales store on the history's last days (where the demand is known) and measures
  true lost units / estimated lost units (:func:`calibrate_lost_scale`); the controller multiplies its lost-unit
  estimates by that ratio (``lost_scale``), and the demand model takes half of the correction.
* **Dormant SKUs that come back.** A SKU that sold nothing for ``restart_days`` days holds only its presence stock;
  when demand returns it sells that unit and closes at zero, and the size of what came back is hidden (on the UCI
  wholesale panels, new and returning products carried 44 % of the lost units). Such a SKU restarts at the mean
  daily demand that followed the restarts in the replayed history (:func:`restart_level`), not at its own level
  of about zero.
* **Global forecast** (``forecast_model="gbm"``, the default once 182 days of history are replayed): a LightGBM
  model of the protection interval's demand, fitted once on the replayed history
  (:mod:`~shopfloor.planning.restock_gbm`), blended half and half with the level forecast per SKU. Read on its own
  its 8-day forecasts were better on M5 demand, yet it held more stock in the simulation: its forecast swings 2.3x
  as much from day to day, and stock raised for a peak is not sent back. The agent therefore orders up to a
  smoothed order-up-to level while it reads the model (``gbm_up_to_halflife``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .lead_time import POISSON_SIZE, _nb_params, _nbinom, nb_expected_shortfall
from .restock import (
    DEFAULT_ORDER_CAP,
    MAX_POLICY_DAYS,
    check_order_cap,
    order_shortfall,
    round_order_quantities,
)


ALLOCATIONS = ("common", "marginal")
FORECAST_MODELS = ("level", "gbm")
#: the gbm forecast moves the level forecast by at most this factor either way, and only for SKUs with this many
#: days since their first sale
GBM_MAX_FACTOR = 4.0
GBM_MIN_AGE = 56


@dataclass(frozen=True)
class EngineTuning:
    """Knobs of :class:`RestockEngine`. The defaults were selected on the M5 windows scored 2013-04..2014-04 and
    2014-04..2015-04 and on UCI Online Retail 2009-10 products ranked 201-400, apart from the reported M5 window
    and UCI top-200 panel (``docs/benchmarks/restock.md``)."""

    #: half-life (days) of the level's exponential smoothing
    level_halflife: float = 10.0
    #: half-life (days) of the per-weekday means, and pseudo-days of the panel's profile each SKU is shrunk to
    profile_halflife: float = 91.0
    profile_prior_days: float = 28.0
    #: half-life (days) of the protection-interval and daily error records, and pseudo-observations of the pooled
    #: ``M + c*M**2`` law each SKU's variance is shrunk to
    error_halflife: float = 180.0
    spread_prior_days: float = 14.0
    #: weight of the daily-residual variance (x protection days) in the spread: ``own**(1-w) * daily**w``
    daily_spread_weight: float = 0.5
    default_dispersion: float = 2.0
    #: while a stock-out lasts, each day's demand estimate for the fill controller is at least this share of the
    #: run's previous day (demand that outran stock usually stays high for a few days)
    stockout_carry: float = 0.4
    #: integral gain (logit of the quantile level per point of fill error and day) and the half-life (days) of
    #: the observed fill it acts on
    controller_gain: float = 0.45
    fill_halflife: float = 28.0
    #: capped base stock (see :func:`~shopfloor.planning.restock.order_shortfall`)
    order_cap: float = DEFAULT_ORDER_CAP
    #: every SKU keeps at least this many units in position: a listed SKU with no stock sells nothing, so without
    #: it one whose demand returns (or starts) while it is out would never show that demand to the engine
    presence_stock: int = 1
    #: days at the end of a replayed history on which to calibrate the starting quantile level (a simulated store
    #: run on them; needs this + 56 days of history). 0 (default) starts from the backorder fill formula: on the
    #: M5 selection windows a 119-day calibration tracked 28-day fill worse (mean error 4.5 / 3.0 / 1.2 points at
    #: 0.90 / 0.95 / 0.98 vs 4.1 / 2.0 / 0.9)
    calibration_days: int = 0
    #: start from the lost-sales form of the fill formula: a review period short ``B`` units under backorders
    #: loses ``B / (1 + B / review demand)`` when unmet demand walks away (it does not eat into the next period)
    lost_sales_start: bool = True
    #: no order-up-to level beyond ``mean + max_sd * sd`` of protection-interval demand: for very overdispersed
    #: (lumpy, wholesale) SKUs the negative-binomial tail at a high quantile level is many times the mean, and stock
    #: raised for an order that does not come stays on the shelf (lost sales are not backordered). 6 (was 4) once
    #: dormant SKUs restart (``restart_days``): on UCI 201-400 fill 0.927 / 0.938 / 0.938 -> 0.932 / 0.959 / 0.958
    #: at ratio 0.967 / 0.988 / 0.987 -> 0.958 / 0.948 / 1.038; M5 selection ratios within 0.001
    max_sd: float = 6.0
    #: days at the end of a replayed history on which to measure how much of the demand lost on sold-out days the
    #: censored-demand estimate misses (a simulated lost-sales store that sees only sales, run on the history,
    #: where the demand is known); the fill controller then scales its lost-unit estimates by that ratio, capped at
    #: ``max_lost_scale``. Needs this + 56 days of history; 0 turns it off
    lost_calibration_days: int = 91
    max_lost_scale: float = 4.0
    #: share of that correction (``1 + w * (scale - 1)``) applied to the censored days' demand in the level and
    #: spread as well, not only in the fill controller's view
    model_lost_weight: float = 0.5
    #: how the fill-rate target is shared among SKUs: "common" (one quantile level for all) or "marginal" (one
    #: shortage penalty for all; each SKU's level where its next unit of stock buys as many sales as any other's,
    #: see :func:`marginal_order_up_to`)
    allocation: str = "common"
    #: weight of the lead-time shortage term in the marginal allocation (0 gives the common level back)
    marginal_lead_weight: float = 1.0
    #: half-life (days) of the store-wide day-of-month profile (one multiplicative factor per day of the month,
    #: pooled over all SKUs: pay-day and benefit-cycle weeks), shrunk towards 1 by how noisy each day's
    #: evidence is; 0 turns it off. Needs the calendar date of each day (the agent and the planner pass it)
    month_halflife: float = 0.0
    #: a SKU that sold nothing for this many days and then sells out (its shelf held only the presence stock, so
    #: the size of the demand that came back is hidden) restarts at ``restart_level``: the mean daily demand of the
    #: ``restart_days`` days after such a restart in the replayed history (all SKUs pooled, measured on the past
    #: only). 0 turns it off; without restarts in the history (or without history) nothing changes. 28: on UCI
    #: 201-400 ratio 1.21-1.23 -> 0.96-0.99 (fill at 0.95: 0.918 -> 0.938); mean of the six M5 selection ratios
    #: 0.889 -> 0.895; 56 within 0.003 of 28
    restart_days: int = 28
    #: the protection-interval mean: "level" (the SKU's own level x weekday profile) or "gbm" (that forecast
    #: rescaled, per SKU and day, towards a global LightGBM model of the next L+R days' demand fitted once on the
    #: replayed history, :mod:`~shopfloor.planning.restock_gbm`; needs 182 days of history, else "level", exactly).
    #: "gbm" with the four knobs below (defaults of 2026-12-03, chosen on the M5 selection years): mean of the six
    #: selection ratios 0.880 against the level model's 0.895 (``docs/benchmarks/restock.md``)
    forecast_model: str = "gbm"
    #: half-life (days) of the exponential smoothing of that factor (0: the day's factor as it is). Smoothing a
    #: ratio lags and biases it high on noisy SKUs; the default smooths the order-up-to level instead
    #: (``gbm_up_to_halflife``)
    gbm_halflife: float = 0.0
    #: weight of the global model in the forecast: ``(1 - w) * level forecast + w * gbm forecast`` (in units).
    #: 0.5: the blend forecasts 8-day demand about as well as the gbm alone (RMSE 0.926-0.928 of ``MA(28)*8``
    #: against 0.921-0.930 on the M5 selection years) with 0.65x its day-to-day swing
    gbm_weight: float = 0.5
    #: measure the daily residuals (half of the spread) and the sold-out days' demand estimates against the day
    #: forecast in force, the gbm factor included, rather than the level x weekday forecast alone
    gbm_day_residuals: bool = True
    #: while the global model is read, the agent orders up to an exponential smoothing (this half-life, days) of
    #: each SKU's order-up-to level (in units, rounded to the nearest unit, never below ``presence_stock``);
    #: 0: the day's level as it is. Stock is not sent back, so a level that swings from day to day holds its
    #: peaks: on the M5 selection years the gbm's 2.3x larger day-to-day swings in the level added 4-5 % of stock
    #: as position left above the day's level (``bench/restock_gbm_gap.py``). The level model's levels are not
    #: smoothed (on M5 it only added lag: ratio at 0.95 0.807 -> 0.815, 0.967 -> 0.980 at half-life 2)
    gbm_up_to_halflife: float = 2.0
    #: the gbm factor applies only to SKUs whose mean daily demand estimate over the last 28 days is at least this
    #: (units a day); slower SKUs keep the level forecast. 0: every SKU (8 was measured and not kept)
    gbm_min_rate: float = 0.0
    #: how many of the last days' demand the global model reads as features (0..7; the means over 7-364 days are
    #: always read; 0 was measured and not kept: 8-day RMSE 0.942 against 0.921-0.930)
    gbm_lags: int = 7
    #: the global model also reads the same L+R days a year earlier and the 28 days after them (SKUs with a year of
    #: memory; the others read them as missing). On (2026-12-04, chosen on the M5 selection years): mean of the six
    #: selection ratios 0.878 against 0.880, better at five of the six targets (the first feature alone: 0.877,
    #: four of six); the UCI histories are too short for the global model
    gbm_yearly: bool = True
    min_alpha: float = 0.5
    #: highest common quantile level the fill controller may steer to. 0.9999 (was 0.9995): on the UCI selection
    #: panel (products 201-400) the level sat at 0.9995 on every scored day at the 0.98 target with fill 0.958;
    #: at 0.9999 it fills 0.965 (0.9998: 0.962, 0.99995: 0.964) for 7 % more stock, 0.95 and 0.90 within 0.05
    #: points and the M5 selection years unchanged (the cap never binds there)
    max_alpha: float = 0.9999
    #: order against the lost-sales inventory position: on hand + on order + the units expected to be lost before
    #: today's order arrives (demand met by an empty shelf walks away instead of eating into the stock on order,
    #: so base stock on the plain position over-orders after a stock-out). The arrival dates of the stock on order
    #: are the engine's own orders of the last L days; stock on order it did not place counts as arriving
    #: tomorrow. The expected loss is ``max_j E[(D_1..j - on hand - arrivals_1..j)^+]`` over the lead-time days
    #: under the negative-binomial forecast (a lower bound of the exact ``E[max_j ...]``). Off: measured on the
    #: selection panels (2026-12-04), mean of the six M5 selection ratios 0.882 against 0.880, UCI 201-400 fill
    #: 0.935 / 0.961 / 0.963 against 0.932 / 0.960 / 0.965 (the fill controller absorbs what it changes)
    lost_sales_position: bool = False

    def __post_init__(self) -> None:
        for name in ("level_halflife", "profile_halflife", "error_halflife", "fill_halflife",
                     "default_dispersion"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        for name in ("profile_prior_days", "spread_prior_days", "controller_gain", "stockout_carry", "max_sd",
                     "model_lost_weight", "month_halflife", "marginal_lead_weight", "gbm_halflife",
                     "gbm_up_to_halflife", "gbm_min_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        check_order_cap(self.order_cap)
        if not isinstance(self.gbm_weight, (int, float)) or isinstance(self.gbm_weight, bool) \
                or not 0 <= self.gbm_weight <= 1:
            raise ValueError(f"gbm_weight must be in [0, 1], got {self.gbm_weight!r}")
        if not 0 <= self.daily_spread_weight <= 1:
            raise ValueError(f"daily_spread_weight must be in [0, 1], got {self.daily_spread_weight!r}")
        if isinstance(self.calibration_days, bool) or not isinstance(self.calibration_days, int) \
                or self.calibration_days < 0:
            raise ValueError(f"calibration_days must be an integer >= 0, got {self.calibration_days!r}")
        if isinstance(self.restart_days, bool) or not isinstance(self.restart_days, int) or self.restart_days < 0:
            raise ValueError(f"restart_days must be an integer >= 0, got {self.restart_days!r}")
        if isinstance(self.lost_calibration_days, bool) or not isinstance(self.lost_calibration_days, int) \
                or self.lost_calibration_days < 0:
            raise ValueError(f"lost_calibration_days must be an integer >= 0, got {self.lost_calibration_days!r}")
        if not isinstance(self.max_lost_scale, (int, float)) or isinstance(self.max_lost_scale, bool) \
                or not self.max_lost_scale >= 1:
            raise ValueError(f"max_lost_scale must be a number >= 1, got {self.max_lost_scale!r}")
        if isinstance(self.gbm_lags, bool) or not isinstance(self.gbm_lags, int) or not 0 <= self.gbm_lags <= 7:
            raise ValueError(f"gbm_lags must be an integer in 0..7, got {self.gbm_lags!r}")
        if not isinstance(self.gbm_yearly, bool):
            raise ValueError(f"gbm_yearly must be true or false, got {self.gbm_yearly!r}")
        if not isinstance(self.gbm_day_residuals, bool):
            raise ValueError(f"gbm_day_residuals must be true or false, got {self.gbm_day_residuals!r}")
        if not isinstance(self.lost_sales_position, bool):
            raise ValueError(f"lost_sales_position must be true or false, got {self.lost_sales_position!r}")
        if not isinstance(self.lost_sales_start, bool):
            raise ValueError(f"lost_sales_start must be true or false, got {self.lost_sales_start!r}")
        if isinstance(self.presence_stock, bool) or not isinstance(self.presence_stock, int) or self.presence_stock < 0:
            raise ValueError(f"presence_stock must be an integer >= 0, got {self.presence_stock!r}")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {list(ALLOCATIONS)}, got {self.allocation!r}")
        if self.forecast_model not in FORECAST_MODELS:
            raise ValueError(f"forecast_model must be one of {list(FORECAST_MODELS)}, got {self.forecast_model!r}")
        if not 0.5 <= self.min_alpha < self.max_alpha < 1:
            raise ValueError("need 0.5 <= min_alpha < max_alpha < 1")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "EngineTuning":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown tuning key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_text(cls, text: str) -> "EngineTuning":
        """Overrides written ``key=value,key=value`` (benchmarks' ``--tuning``), each value read as its field's type
        (``true``/``1``/``yes`` for a flag); an empty text gives the defaults. Unknown keys and unreadable values
        raise ``ValueError`` naming the key."""
        if not text.strip():
            return cls()
        kinds = {f.name: f.type for f in fields(cls)}
        over: dict[str, Any] = {}
        for pair in text.split(","):
            key, _, value = pair.strip().partition("=")
            kind = kinds.get(key)
            try:
                if kind in ("int", int):
                    over[key] = int(value)
                elif kind in ("str", str):
                    over[key] = value
                elif kind in ("bool", bool):
                    over[key] = value.lower() in ("1", "true", "yes")
                else:
                    over[key] = float(value)
            except ValueError:
                raise ValueError(f"tuning key {key!r}: cannot read {value!r} as {kind}") from None
        return cls.from_mapping(over)


_GBM_MEMORY = 364
_MONTH_LEVEL_RATE = 1.0 - 0.5 ** (1.0 / 30.4)  # the slow level of the day-of-month profile: half-life one month


def _decay(halflife: float) -> float:
    return 0.5 ** (1.0 / halflife)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def nb_quantiles(alpha: float | np.ndarray, mean: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``alpha`` quantile of NB(mean, size) per element (0 where the mean is 0): the smallest integer ``x`` with
    ``P(D <= x) >= alpha`` (``alpha`` one level for all, or one per element).

    Starts from the quantile of a gamma distribution with the same mean and variance and walks to the exact integer
    on the closed-form CDF ``I_p(r, x + 1)``; the few elements still moving after 6 steps finish by bisection. Same
    integers as ``scipy.stats.nbinom.ppf`` (a test checks it), several times faster on 30,000 SKUs.
    """
    from scipy import special

    mean = np.asarray(mean, dtype=float)
    out = np.zeros(mean.shape, dtype=np.int64)
    live = mean > 0
    if not live.any():
        return out
    m = mean[live]
    r, p = _nb_params(m, np.broadcast_to(np.asarray(size, dtype=float), mean.shape)[live])
    a = np.broadcast_to(np.asarray(alpha, dtype=float), mean.shape)[live]
    var = m + m * m / r
    shape = m * m / var
    x = np.maximum(np.floor(special.gammaincinv(shape, a) * var / m), 0.0)

    def cdf(idx, at):
        return special.betainc(r[idx], at + 1.0, p[idx])

    # walk up where P(D <= x) < alpha, down where P(D <= x - 1) >= alpha
    todo = np.flatnonzero(cdf(slice(None), x) < a)
    for _ in range(6):
        if not todo.size:
            break
        x[todo] += 1
        todo = todo[cdf(todo, x[todo]) < a[todo]]
    down = np.flatnonzero(x > 0)
    down = down[cdf(down, x[down] - 1) >= a[down]]
    for _ in range(6):
        if not down.size:
            break
        x[down] -= 1
        down = down[x[down] > 0]
        down = down[cdf(down, x[down] - 1) >= a[down]]
    rest = np.union1d(todo, down)
    if rest.size:  # far from the gamma start (very small sizes): bisection
        sd = np.sqrt(var[rest])
        lo = np.full(rest.size, -1.0)
        hi = np.ceil(m[rest] + 60.0 * sd + 20.0)
        while np.any(hi - lo > 1):
            mid = np.floor((lo + hi) / 2)
            ok = cdf(rest, mid) >= a[rest]
            gap = hi - lo > 1
            hi = np.where(gap & ok, mid, hi)
            lo = np.where(gap & ~ok, mid, lo)
        x[rest] = hi
    out[live] = x.astype(np.int64)
    return out


#: quantile levels of protection-interval demand among which the marginal allocation picks each SKU's level
MARGINAL_GRID = 1.0 - np.geomspace(0.75, 2e-4, 28)


def marginal_order_up_to(penalty: float, mean_lead: np.ndarray, mean_protect: np.ndarray,
                         size: np.ndarray, lead_weight: float = 1.0) -> np.ndarray:
    """Per-SKU order-up-to level ``S`` minimising ``E[(S - D_P)^+] + penalty * (E[(D_P - S)^+] - E[(D_L - S)^+])``.

    ``D_P`` is protection-interval (lead time + review) demand and ``D_L`` lead-time demand, both NB with ``size``.
    The first term is the stock left at the end of a review period, the second the units short in it (the
    backorder-formula shortage per cycle), so one ``penalty`` for every SKU is the Lagrange multiplier of a
    portfolio fill-rate constraint: each SKU stocks up to where one more unit on the shelf buys ``1 / penalty``
    units of sales. Where a unit of stock buys more sales on some SKUs than on others, stock moves to them. With
    ``lead_weight = 0`` the rule is the common quantile level (the newsvendor critical ratio
    ``penalty / (1 + penalty)``); the lead-time term (weight 1: the full backorder formula) is what makes levels
    differ. On the M5 selection windows this held no less stock than the common level (docs/benchmarks/restock.md).

    ``S`` is searched among the :data:`MARGINAL_GRID` quantiles of ``D_P`` (and 0); ties go to the lower level.
    """
    mp = np.asarray(mean_protect, dtype=float)
    ml = np.asarray(mean_lead, dtype=float)
    k = np.broadcast_to(np.asarray(size, dtype=float), mp.shape)
    cand = np.vstack([np.zeros(len(mp), dtype=np.int64)] + [nb_quantiles(q, mp, k) for q in MARGINAL_GRID])
    short_p = nb_expected_shortfall(mp, k, cand)
    short_l = nb_expected_shortfall(ml, k, cand)
    cost = (cand - mp + short_p) + float(penalty) * np.maximum(short_p - lead_weight * short_l, 0.0)
    return cand[np.argmin(cost, axis=0), np.arange(len(mp))]


def nb_cdf(x: np.ndarray, mean: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``P(D <= x)`` for D ~ NB(mean, size), elementwise (1 where the mean is 0 and ``x >= 0``)."""
    from scipy import special

    x = np.asarray(x, dtype=float)
    m = np.asarray(mean, dtype=float)
    r, p = _nb_params(np.maximum(m, 1e-12), size)
    out = np.where(x >= 0, special.betainc(r, np.maximum(x, 0.0) + 1.0, p), 0.0)
    return np.where(m > 0, out, (x >= 0).astype(float))


def order_levels(alpha: float, mean_lead: np.ndarray, mean_protect: np.ndarray, size: np.ndarray,
                 tuning: EngineTuning, *, lead_time: int) -> tuple[np.ndarray, np.ndarray]:
    """Order-up-to level and reorder point per SKU, capped at ``mean + max_sd * sd`` of their window's demand,
    the level at least ``presence_stock``. The engine and the planner's plan lines both take their levels from
    here.

    ``allocation="common"``: the ``alpha`` quantiles of protection-interval and lead-time demand (NB with
    ``size``). ``allocation="marginal"``: the order-up-to level of :func:`marginal_order_up_to` with the shortage
    penalty ``alpha / (1 - alpha)`` (the penalty whose newsvendor critical ratio is ``alpha``), and the reorder
    point at the lead-time quantile of that SKU's own level, ``P(D_P <= S)``.
    """
    if tuning.allocation == "marginal":
        a = float(np.clip(alpha, 1e-9, 1 - 1e-12))
        up_to = marginal_order_up_to(a / (1.0 - a), mean_lead, mean_protect, size, tuning.marginal_lead_weight)
        own = np.clip(nb_cdf(up_to, mean_protect, size), 1e-6, 1 - 1e-9)
        rop = nb_quantiles(own, mean_lead, size) if lead_time > 0 else np.zeros(len(up_to), dtype=np.int64)
        rop = np.minimum(rop, up_to)
    else:
        up_to = nb_quantiles(alpha, mean_protect, size)
        rop = nb_quantiles(alpha, mean_lead, size) if lead_time > 0 else np.zeros(len(up_to), dtype=np.int64)
    if tuning.max_sd > 0:
        sd = np.sqrt(mean_protect + mean_protect * mean_protect / size)
        up_to = np.minimum(up_to, np.ceil(mean_protect + tuning.max_sd * sd)).astype(np.int64)
        sd_lead = np.sqrt(mean_lead + mean_lead * mean_lead / size)
        rop = np.minimum(rop, np.ceil(mean_lead + tuning.max_sd * sd_lead)).astype(np.int64)
    return np.maximum(up_to, tuning.presence_stock), rop


def lost_sales_shortfall(backorder_short: np.ndarray, review_mean: np.ndarray) -> np.ndarray:
    """Units lost per review period when unmet demand walks away, from the backorder formula's shortage ``B``:
    ``B / (1 + B / review demand)``. Under backorders a short period's unmet units stay owed and eat into the
    next period's stock; lost, they do not, so the same order-up-to level serves a larger share of demand."""
    b = np.asarray(backorder_short, dtype=float)
    r = np.asarray(review_mean, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, b / (1.0 + b / r), b)


def censored_demand(sales: np.ndarray, mean: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``E[D | D >= sales]`` for D ~ NB(mean, size): the demand estimate of a day that sold out.

    ``E[D 1{D >= s}] = E[(D - s)^+] + s P(D >= s)``, so the conditional mean is ``s + E[(D - s)^+] / P(D >= s)``.
    """
    s = np.asarray(sales, dtype=float)
    m = np.maximum(np.asarray(mean, dtype=float), 1e-9)
    r, p = _nb_params(m, size)
    tail = _nbinom().sf(s - 1, r, p)
    excess = nb_expected_shortfall(m, size, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.where(tail > 1e-12, excess / tail, 0.0)
    return s + np.nan_to_num(np.maximum(extra, 0.0))


class RestockEngine:
    """The restock policy's state for a growing set of SKUs; see the module docstring.

    Call :meth:`observe` once per day (after the day's sales), then :meth:`orders` for the order quantities at
    the end of that day. ``fill_rate`` is the portfolio fill-rate target (units sold / units demanded).
    """

    def __init__(self, *, lead_time: int, review_days: int = 1, fill_rate: float = 0.95,
                 tuning: EngineTuning | None = None) -> None:
        if not isinstance(lead_time, int) or not 0 <= lead_time <= MAX_POLICY_DAYS:
            raise ValueError(f"lead_time must be an integer in [0, {MAX_POLICY_DAYS}], got {lead_time!r}")
        if not isinstance(review_days, int) or not 1 <= review_days <= MAX_POLICY_DAYS:
            raise ValueError(f"review_days must be an integer in [1, {MAX_POLICY_DAYS}], got {review_days!r}")
        if not (isinstance(fill_rate, (int, float)) and 0.5 <= fill_rate < 1):
            raise ValueError(f"fill_rate must be in [0.5, 1), got {fill_rate!r}")
        self.t = tuning or EngineTuning()
        self.lead_time = lead_time
        self.review_days = review_days
        self.horizon = lead_time + review_days
        self.fill_rate = float(fill_rate)
        self.skus: list[str] = []
        self.index: dict[str, int] = {}
        self.days_seen = 0
        self._weekday = -1  # weekday of the last observed day
        self.day: date | None = None  # calendar date of the last observed day, when known
        # store-wide day-of-month profile: decayed weight, sum and sum of squares of each day's ratio of demand to
        # the month-free forecast, per day of the month 1..31
        self.month_w = np.zeros(31)
        self.month_num = np.zeros(31)
        self.month_sq = np.zeros(31)
        self._d_month = 0.5 ** (30.4 / self.t.month_halflife) if self.t.month_halflife > 0 else 0.0
        self._a_level = 1.0 - _decay(self.t.level_halflife)
        self._d_prof = _decay(self.t.profile_halflife)
        self._d_err = _decay(self.t.error_halflife)
        self._d_fill = _decay(self.t.fill_halflife)
        #: the fitted global forecast (``forecast_model="gbm"``), and whether it is read yet (see replay_history)
        self.gbm = None
        self.gbm_on = False
        self._recent_pos = 0
        self._alloc(0)
        # controller
        self._logit: float | None = None
        #: multiplier on the estimated units lost on sold-out days, as seen by the fill controller
        self.lost_scale = 1.0
        #: de-seasonalised daily level a dormant SKU restarts at when it sells out (see ``restart_days``); 0: off
        self.restart_level = 0.0
        self.last_estimate = np.zeros(0)  # the demand estimate of the last observed day, per SKU
        self._sold_ew = 0.0
        self._dem_ew = 0.0
        self.control_days = 0  # days observed with stock decisions in force (sales data from the store)
        self.orders_placed_days = 0

    # --- state -----------------------------------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        h = self.horizon
        self.level = np.zeros(n)
        self.obs_days = np.zeros(n)
        self.wd_sum = np.zeros((n, 7))
        self.wd_w = np.zeros((n, 7))
        self.pend_fc = np.zeros((n, h))
        self.pend_dem = np.zeros((n, h))
        self.pend_ok = np.zeros((n, h), dtype=bool)
        self.err_sq = np.zeros(n)
        self.err_w = np.zeros(n)
        self.rel_num = np.zeros(n)
        self.rel_den = np.zeros(n)
        self.day_sq = np.zeros(n)
        self.day_w = np.zeros(n)
        self.run_rate = np.zeros(n)  # de-seasonalised demand estimate of the last day, while stocked out
        self.month_level = np.zeros(n)  # a slow level (half-life ~ a month) the day-of-month profile is measured on
        self.idle = np.zeros(n)  # days since the last day with positive sales (days observed)
        # gbm forecast: factor on the level forecast, days since the first sale, last MEMORY days' demand estimates
        self.adj = np.ones(n)
        self.age = np.zeros(n)
        self.recent = np.zeros((n, _GBM_MEMORY if self.t.forecast_model == "gbm" else 0))
        # smoothed order-up-to level (``gbm_up_to_halflife``); NaN until a SKU's first decision
        self.up_to_ew = np.full(n, np.nan)
        # units ordered on each of the last L + 1 days (slot ``days_seen % (L + 1)`` is today's), for the
        # arrival dates of the stock on order (``lost_sales_position``)
        self.order_log = np.zeros((n, self.lead_time + 1))

    def _grow(self, extra: int) -> None:
        for name in ("level", "obs_days", "err_sq", "err_w", "rel_num", "rel_den", "day_sq", "day_w",
                     "run_rate", "month_level", "idle", "age"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.zeros(extra, dtype=arr.dtype)]))
        self.adj = np.concatenate([self.adj, np.ones(extra)])
        self.up_to_ew = np.concatenate([self.up_to_ew, np.full(extra, np.nan)])
        for name in ("wd_sum", "wd_w", "pend_fc", "pend_dem", "pend_ok", "recent", "order_log"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.zeros((extra, arr.shape[1]), dtype=arr.dtype)]))

    @property
    def n(self) -> int:
        return len(self.skus)

    _PER_SKU = ("level", "obs_days", "err_sq", "err_w", "rel_num", "rel_den", "day_sq", "day_w", "run_rate",
                "month_level", "idle", "adj", "age", "up_to_ew",
                "wd_sum", "wd_w", "pend_fc", "pend_dem", "pend_ok", "recent", "order_log")

    def subset(self, idx: np.ndarray) -> "RestockEngine":
        """An independent copy holding only the SKUs at ``idx`` (same day, same quantile level)."""
        import copy

        clone = copy.copy(self)
        clone.skus = [self.skus[i] for i in idx]
        clone.index = {s: j for j, s in enumerate(clone.skus)}
        for name in self._PER_SKU:
            setattr(clone, name, getattr(self, name)[idx].copy())
        clone.month_w, clone.month_num, clone.month_sq = (self.month_w.copy(), self.month_num.copy(),
                                                          self.month_sq.copy())
        return clone

    def set_alpha(self, alpha: float) -> None:
        """Start the controller from quantile level ``alpha``."""
        self._logit = _logit(float(np.clip(alpha, self.t.min_alpha, self.t.max_alpha)))

    def ensure(self, skus: Iterable[str]) -> np.ndarray:
        """Indices of ``skus`` (strings), adding the new ones (no history yet)."""
        skus = list(skus)
        if not self.index.keys() >= set(skus):
            new = [s for s in dict.fromkeys(skus) if s not in self.index]
            for s in new:
                self.index[s] = len(self.skus)
                self.skus.append(s)
            self._grow(len(new))
        return np.array(list(map(self.index.__getitem__, skus)), dtype=np.int64)

    def vector(self, values: Mapping[str, float], default: float = 0.0) -> np.ndarray:
        """A per-SKU array from ``{sku: value}`` (SKUs not named get ``default``; new SKUs are added)."""
        out = np.full(self.n, default, dtype=float)
        if values:
            idx = self.ensure(values)
            if len(out) < self.n:
                out = np.concatenate([out, np.full(self.n - len(out), default)])
            out[idx] = np.fromiter(values.values(), dtype=float, count=len(values))
        return out

    # --- demand model ----------------------------------------------------------------------------------------
    def weekday_profile(self) -> np.ndarray:
        """(n, 7) multiplicative weekday factors (mean 1), shrunk towards the panel's profile."""
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(self.wd_w > 0, self.wd_sum / self.wd_w, 0.0)  # per-weekday mean demand
        overall = own.mean(axis=1)
        tot = own.sum(axis=0)
        pooled = tot / tot.mean() if tot.mean() > 0 else np.ones(7)
        prior = self.t.profile_prior_days
        with np.errstate(divide="ignore", invalid="ignore"):
            prof = (self.wd_w * own + prior * overall[:, None] * pooled[None, :]) / (
                (self.wd_w + prior) * overall[:, None])
        prof = np.where(overall[:, None] > 0, np.nan_to_num(prof, nan=1.0), pooled[None, :])
        return prof / np.maximum(prof.mean(axis=1, keepdims=True), 1e-12)

    def month_factors(self) -> np.ndarray:
        """(31,) store-wide multiplicative factor for days 1..31 of the month (all 1 when the profile is off or
        nothing is known yet).

        Each day's store-wide ratio ``r`` = demand / month-free forecast is averaged per day of the month
        (exponentially weighted). The averages are shrunk towards 1 empirically (James-Stein): by
        ``tau2 / (tau2 + noise_d)``, where ``noise_d`` is the variance of day ``d``'s average (the spread of its
        ratios over its weight) and ``tau2`` the spread of the averages across days beyond that noise. A store
        whose month shows no pattern above its day-to-day noise (a few wholesale orders) keeps factors near 1.
        Needs about three observations of each of days 1..28 first; normalised to mean 1 over days 1..28.
        """
        w = self.month_w
        if self._d_month <= 0 or np.count_nonzero(w >= 2) < 28:
            return np.ones(31)
        ok = w >= 2
        mean = np.where(ok, self.month_num / np.where(ok, w, 1.0), 1.0)
        var = np.where(ok, np.maximum(self.month_sq / np.where(ok, w, 1.0) - mean ** 2, 0.0), 0.0)
        noise = np.where(ok, var / np.where(ok, w, 1.0), np.inf)
        tau2 = max(float(np.var(mean[ok]) - np.mean(noise[ok])), 0.0)
        shrink = np.where(ok, tau2 / (tau2 + noise), 0.0) if tau2 > 0 else np.zeros(31)
        f = 1.0 + shrink * (mean - 1.0)
        return f / f[:28].mean()

    def _month_of(self, ahead: int) -> np.ndarray:
        """Factors for the next ``ahead`` days (tomorrow first); ones when the date is unknown."""
        if self.day is None or self._d_month <= 0:
            return np.ones(ahead)
        f = self.month_factors()
        return np.array([f[(self.day + timedelta(days=j + 1)).day - 1] for j in range(ahead)])

    def daily_means(self, days: int, profile: np.ndarray | None = None) -> np.ndarray:
        """(n, days) expected demand for each of the next ``days`` days (tomorrow first)."""
        prof = self.weekday_profile() if profile is None else profile
        start = (self._weekday + 1) % 7 if self._weekday >= 0 else 0
        idx = (start + np.arange(days)) % 7
        out = self.level[:, None] * prof[:, idx] * self._month_of(days)[None, :]
        return out * self.adj[:, None] if self.gbm is not None else out

    def _pooled_rel(self) -> float:
        den = self.rel_den.sum()
        return max(self.rel_num.sum(), 0.0) / den if den > 0 else 1.0 / self.t.default_dispersion

    def variance(self, mean_total: np.ndarray) -> np.ndarray:
        """Variance of protection-interval demand per SKU (never below Poisson)."""
        m = np.asarray(mean_total, dtype=float)
        prior = m + self._pooled_rel() * m * m
        k = self.t.spread_prior_days
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(self.err_w + k > 0, (self.err_sq + k * prior) / (self.err_w + k), prior)
        w = self.t.daily_spread_weight
        if w > 0:
            daily = self.horizon * (self.day_sq + k * prior / self.horizon) / (self.day_w + k)
            v = np.maximum(v, 1e-9) ** (1 - w) * np.maximum(daily, 1e-9) ** w
        return np.maximum(np.nan_to_num(v), m)

    def sizes(self, mean_total: np.ndarray) -> np.ndarray:
        """Negative-binomial size per SKU for a window with mean ``mean_total``."""
        m = np.asarray(mean_total, dtype=float)
        excess = self.variance(m) - m
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(excess > 1e-9 * np.maximum(m, 1.0), m * m / excess, POISSON_SIZE)
        return np.clip(np.nan_to_num(size, nan=POISSON_SIZE), 0.05, POISSON_SIZE)

    def day_sizes(self, day_mean: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Negative-binomial size of one day's demand for the SKUs ``which`` (a mask), from their residuals on
        uncensored days."""
        m = np.maximum(np.asarray(day_mean, dtype=float), 1e-9)
        k = self.t.spread_prior_days
        prior = m + m * m / self.t.default_dispersion
        v = (self.day_sq[which] + k * prior) / (self.day_w[which] + k)
        excess = v - m
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(excess > 1e-9 * np.maximum(m, 1.0), m * m / excess, POISSON_SIZE)
        return np.clip(np.nan_to_num(size, nan=POISSON_SIZE), 0.02, POISSON_SIZE)

    def observe(self, weekday: int, sales: np.ndarray, closed_out: np.ndarray | None = None,
                known: np.ndarray | None = None, *, day: date | None = None) -> np.ndarray:
        """Feed one day: units sold per SKU (length ``n``), and which SKUs closed the day with no stock.

        ``known`` marks the SKUs this day says anything about (default: all); the others keep their state (a
        SKU not yet listed, say). ``day`` is the day's date (default: the day after the last dated one, if any);
        the day-of-month profile needs it. Returns the demand estimate the model used (sales, or
        ``E[D | D >= sales]`` on closed-out days).
        """
        if not 0 <= int(weekday) <= 6:
            raise ValueError(f"weekday must be 0..6, got {weekday!r}")
        weekday = int(weekday)
        s = np.asarray(sales, dtype=float)
        if s.shape != (self.n,):
            raise ValueError(f"expected {self.n} sales values, got shape {s.shape}")
        if day is not None and day.weekday() != weekday:
            raise ValueError(f"day {day} is not weekday {weekday}")
        day = day if day is not None else (self.day + timedelta(days=1) if self.day is not None else None)
        known = np.ones(self.n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
        prof = self.weekday_profile()
        mf = 1.0
        if day is not None and self._d_month > 0:
            mf = float(self.month_factors()[day.day - 1])
            prof = prof * mf  # today's factors: weekday x day of month
        # the day-of-month profile is measured against a level slow enough not to follow the month's own cycle
        free = self.month_level * prof[:, weekday] / mf
        day_mean = self.level * prof[:, weekday]
        if self.t.gbm_day_residuals and self.gbm is not None:
            day_mean = day_mean * self.adj  # yesterday's forecast of today, the gbm factor in force included
        x = s.copy()
        x_fill = x  # the demand estimate the fill controller sees
        back = np.zeros(self.n, dtype=bool)
        if self.restart_level > 0 and closed_out is not None and self.t.restart_days > 0:
            # a dormant SKU that sold out: the size of the demand that came back is hidden behind the presence
            # stock; it restarts at the level measured on the history's restarts
            back = (np.asarray(closed_out, dtype=bool) & known & (s > 0) & (self.idle >= self.t.restart_days)
                    & (self.level < self.restart_level) & (self.obs_days > 0))
        if closed_out is not None:
            cens = np.asarray(closed_out, dtype=bool) & known & (self.obs_days > 0)
            if cens.any():
                k_day = self.day_sizes(day_mean[cens], cens)
                est = np.maximum(censored_demand(s[cens], day_mean[cens], k_day), s[cens])
                if back.any():
                    est = np.where(back[cens], np.maximum(est, self.restart_level * prof[cens, weekday]), est)
                # a stock-out that lasts shows demand running above the forecast (a level shift the level has
                # not caught up with): while it lasts, the day's estimate is at least the run's last one
                carry = self.t.stockout_carry * self.run_rate[cens] * prof[cens, weekday]
                x[cens] = est
                x_fill = x.copy()
                w = self.t.model_lost_weight
                if w > 0 and self.lost_scale != 1.0:
                    # the demand model takes part of the same correction (all of it over-stocks: the scale is a
                    # store-wide average, and lumpy SKUs' levels and spreads would swell on every stock-out)
                    x[cens] = s[cens] + (1.0 + w * (self.lost_scale - 1.0)) * (est - s[cens])
                x_fill[cens] = np.maximum(est, carry)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(prof[:, weekday] > 0, x_fill / prof[:, weekday], x_fill)
            if cens.any() and self.lost_scale != 1.0:
                # the controller's view: lost units scaled by what the censored estimate misses on this store
                x_fill[cens] = s[cens] + self.lost_scale * (x_fill[cens] - s[cens])
            self.run_rate = np.where(cens, rate, 0.0)
        first = known & (self.obs_days == 0)
        clean = known & ~first if closed_out is None else known & ~first & ~np.asarray(closed_out, dtype=bool)
        r = s[clean] - day_mean[clean]
        self.day_sq[clean] = self._d_err * self.day_sq[clean] + r * r
        self.day_w[clean] = self._d_err * self.day_w[clean] + 1.0
        # de-seasonalised level; a SKU's first day sets it
        with np.errstate(divide="ignore", invalid="ignore"):
            deseason = np.where(prof[:, weekday] > 0, x / prof[:, weekday], x)
        self.level = np.where(first, deseason,
                              np.where(known, self.level + self._a_level * (deseason - self.level), self.level))
        if back.any():
            self.level[back] = self.restart_level
        self.idle = np.where(known, np.where(s > 0, 0.0, self.idle + 1.0), self.idle)
        if self._d_month > 0:
            self.month_level = np.where(first, deseason, np.where(
                known, self.month_level + _MONTH_LEVEL_RATE * (deseason - self.month_level), self.month_level))
        # weekday means (exponentially weighted by days, each weekday its own sum)
        kn = known[:, None]
        self.wd_sum = np.where(kn, self.wd_sum * self._d_prof, self.wd_sum)
        self.wd_w = np.where(kn, self.wd_w * self._d_prof, self.wd_w)
        self.wd_sum[known, weekday] += x[known] / mf
        if day is not None and self._d_month > 0:
            seen = known & (self.obs_days > 0)
            d = day.day - 1
            expected = float(free[seen].sum())
            if expected > 0:
                r = float(x[seen].sum()) / expected
                self.month_w[d] = self._d_month * self.month_w[d] + 1.0
                self.month_num[d] = self._d_month * self.month_num[d] + r
                self.month_sq[d] = self._d_month * self.month_sq[d] + r * r
        self.day = day
        self.wd_w[known, weekday] += 1.0
        # protection-interval errors of earlier forecasts: every pending origin accrues today's demand
        h = self.horizon
        slot = self.days_seen % h
        self.pend_dem[known] += x[known, None]
        done = self.pend_ok[:, slot] & known
        if done.any():
            m = self.pend_fc[done, slot]
            e = self.pend_dem[done, slot] - m
            self.err_sq[done] = self._d_err * self.err_sq[done] + e * e
            self.err_w[done] = self._d_err * self.err_w[done] + 1.0
            self.rel_num[done] = self._d_err * self.rel_num[done] + (e * e - m)
            self.rel_den[done] = self._d_err * self.rel_den[done] + m * m
        self.obs_days[known] += 1
        self._weekday = weekday
        self.days_seen += 1
        self.order_log[:, self.days_seen % (self.lead_time + 1)] = 0.0  # today's slot: nothing ordered yet
        if self.recent.shape[1]:
            self._update_gbm(x, known)
        fc = self.daily_means(h).sum(axis=1)
        self.pend_fc[:, slot] = np.where(known, fc, self.pend_fc[:, slot])
        self.pend_dem[:, slot] = np.where(known, 0.0, self.pend_dem[:, slot])
        self.pend_ok[:, slot] = np.where(known, True, False)
        self.last_estimate = x_fill
        return x_fill

    def _update_gbm(self, x: np.ndarray, known: np.ndarray) -> None:
        """Record the day's demand estimates and, once the global model reads, refresh each SKU's factor."""
        self.recent[:, self._recent_pos] = np.where(known, x, 0.0)
        self._recent_pos = (self._recent_pos + 1) % self.recent.shape[1]
        self.age = np.where(known & ((self.age > 0) | (x > 0)), self.age + 1.0, self.age)
        if self.gbm is None or not self.gbm_on:
            return
        ordered = np.roll(self.recent, -self._recent_pos, axis=1)  # oldest first, today last
        pred = self.gbm.predict(ordered, np.minimum(self.age, ordered.shape[1]), self._weekday, self.day)
        own = (self.level[:, None] * self.weekday_profile()[:, (self._weekday + 1 + np.arange(self.horizon)) % 7]
               * self._month_of(self.horizon)[None, :]).sum(axis=1)
        ok = (self.age >= GBM_MIN_AGE) & (own > 1e-9)
        if self.t.gbm_min_rate > 0:
            ok &= ordered[:, -28:].mean(axis=1) >= self.t.gbm_min_rate
        target = np.ones(self.n)
        target[ok] = np.clip(pred[ok] / own[ok], 1.0 / GBM_MAX_FACTOR, GBM_MAX_FACTOR)
        if self.t.gbm_weight < 1:
            target = 1.0 + self.t.gbm_weight * (target - 1.0)
        a = 1.0 - _decay(self.t.gbm_halflife) if self.t.gbm_halflife > 0 else 1.0
        self.adj = self.adj + a * (target - self.adj)

    # --- fill-rate control -----------------------------------------------------------------------------------
    def record_fill(self, sold_units: float, demand_estimate: float) -> None:
        """Integral control of ``alpha`` on the observed fill rate (sales / estimated demand)."""
        if self._logit is None:
            return
        self._sold_ew = self._d_fill * self._sold_ew + float(sold_units)
        self._dem_ew = self._d_fill * self._dem_ew + float(demand_estimate)
        self.control_days += 1
        # orders placed in the first L+1 days have not arrived yet: their fill says nothing about alpha
        if self.orders_placed_days <= self.lead_time + 1 or self._dem_ew <= 0:
            self._sold_ew = self._dem_ew = 0.0
            return
        observed = self._sold_ew / self._dem_ew
        self._logit = float(np.clip(self._logit + self.t.controller_gain * (self.fill_rate - observed),
                                    _logit(self.t.min_alpha), _logit(self.t.max_alpha)))

    @property
    def observed_fill(self) -> float | None:
        return self._sold_ew / self._dem_ew if self._dem_ew > 0 else None

    def initial_alpha(self, mean_lead: np.ndarray, mean_protect: np.ndarray, size: np.ndarray) -> float:
        """Quantile level (or, with marginal allocation, the level ``penalty / (1 + penalty)`` of the shortage
        penalty) whose expected (backorder-formula) portfolio fill, under :func:`order_levels` with its caps,
        equals the target."""
        review = np.maximum(mean_protect - mean_lead, 0.0)
        tot = review.sum()
        if tot <= 0:
            return self.fill_rate
        lo, hi = _logit(self.t.min_alpha), _logit(self.t.max_alpha)
        for _ in range(18):
            mid = 0.5 * (lo + hi)
            s, _ = order_levels(1.0 / (1.0 + math.exp(-mid)), mean_lead, mean_protect, size, self.t,
                                lead_time=self.lead_time)
            short = np.maximum(nb_expected_shortfall(mean_protect, size, s)
                               - nb_expected_shortfall(mean_lead, size, s), 0.0)
            if self.t.lost_sales_start:
                short = lost_sales_shortfall(short, review)
            fill = 1.0 - short.sum() / tot
            lo, hi = (lo, mid) if fill >= self.fill_rate else (mid, hi)
        return float(1.0 / (1.0 + math.exp(-hi)))

    @property
    def alpha(self) -> float:
        """The common quantile level now in force (the target itself until the first decision)."""
        if self._logit is None:
            return self.fill_rate
        return float(1.0 / (1.0 + math.exp(-self._logit)))

    # --- decisions -------------------------------------------------------------------------------------------
    def levels(self) -> dict[str, np.ndarray]:
        """Per-SKU daily means, NB size, reorder point and order-up-to level for the current ``alpha``."""
        means = self.daily_means(self.horizon)
        m_prot = means.sum(axis=1)
        m_lead = means[:, : self.lead_time].sum(axis=1)
        size = self.sizes(m_prot)
        if self._logit is None:
            self._logit = _logit(float(np.clip(self.initial_alpha(m_lead, m_prot, size),
                                               self.t.min_alpha, self.t.max_alpha)))
        up_to, rop = order_levels(self.alpha, m_lead, m_prot, size, self.t, lead_time=self.lead_time)
        return {"means": means, "mean_protect": m_prot, "mean_lead": m_lead, "size": size,
                "order_up_to": up_to, "reorder_point": rop}

    def orders(self, position: np.ndarray, *, moq: int = 1, pack_size: int = 1,
               active: np.ndarray | None = None, on_hand: np.ndarray | None = None) -> np.ndarray:
        """Order quantities per SKU for inventory ``position`` (on hand + on order), end of today. With
        ``lost_sales_position`` and ``on_hand`` given, the units expected to be lost before today's order arrives
        are added to the position (:meth:`expected_lead_loss`)."""
        lv = self.levels()
        position = np.asarray(position, dtype=float)
        if self.t.lost_sales_position and on_hand is not None and self.lead_time > 0:
            position = position + self.expected_lead_loss(lv, np.asarray(on_hand, dtype=float), position)
        if self.t.gbm_up_to_halflife > 0 and self.gbm is not None and self.gbm_on:
            lv["order_up_to"] = self.smooth_up_to(lv["order_up_to"], active)
        raw = order_shortfall(lv["order_up_to"], lv["reorder_point"], np.asarray(position, dtype=float),
                              lead_time_days=self.lead_time, review_days=self.review_days,
                              order_cap=self.t.order_cap)
        qty = round_order_quantities(raw, moq, pack_size)
        if active is not None:
            qty = np.where(np.asarray(active, dtype=bool), qty, 0)
        self.orders_placed_days += 1
        self.order_log[:, self.days_seen % (self.lead_time + 1)] = qty
        return qty

    def expected_lead_loss(self, lv: dict[str, np.ndarray], on_hand: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Units per SKU expected to go unserved (lost) on the L days before an order placed today arrives.

        Under lost sales the stock at the start of day j is the free process ``N_j = on hand + arrivals_1..j -
        D_1..j`` lifted by the units lost so far, and the units lost by day j are ``max(0, max_i<=j -N_i)``;
        this returns ``max_j E[(D_1..j - on hand - arrivals_1..j)^+]``, a lower bound of the expectation, with
        ``D_1..j`` negative binomial (the day forecasts summed, the protection interval's size scaled by the share
        of its mean, so the variance grows with the days). Arrivals: the engine's own orders of the last L days,
        each arriving L + 1 days after it was placed; stock on order beyond them counts as arriving tomorrow, and
        less on order than they add up to scales them down."""
        lead = self.lead_time
        width = lead + 1
        # arrival on day k (1 = tomorrow) is the order placed L + 1 - k days ago
        slots = [(self.days_seen - (lead + 1 - k)) % width for k in range(1, lead + 1)]
        arrivals = self.order_log[:, slots].astype(float)
        on_order = np.maximum(position - on_hand, 0.0)
        logged = arrivals.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(logged > on_order, np.where(logged > 0, on_order / logged, 0.0), 1.0)
        arrivals = arrivals * scale[:, None]
        arrivals[:, 0] += np.maximum(on_order - logged, 0.0)
        stock = np.maximum(on_hand, 0.0)[:, None] + np.cumsum(arrivals, axis=1)
        mean = np.cumsum(lv["means"][:, :lead], axis=1)
        m_prot = np.asarray(lv["mean_protect"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(m_prot[:, None] > 0, mean / m_prot[:, None], 0.0)
        size = np.asarray(lv["size"], dtype=float)[:, None] * np.maximum(share, 1e-9)
        # only SKU-days where the stock could run out within a generous tail need the NB evaluation
        sd = np.sqrt(mean + mean * mean / np.maximum(size, 1e-12))
        live = (mean > 0) & (stock < mean + 8.0 * sd + 1.0)
        short = np.zeros_like(mean)
        if live.any():
            short[live] = nb_expected_shortfall(mean[live], size[live], stock[live])
        return short.max(axis=1)

    def smooth_up_to(self, up_to: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The order-up-to level to order to under ``gbm_up_to_halflife``: each SKU's exponentially smoothed level (in
        units; a SKU's first decision starts it at the day's level), rounded to the nearest unit and at least
        ``presence_stock``. Only ``active`` SKUs (default all) move their smoothed level."""
        up = np.asarray(up_to, dtype=float)
        act = np.ones(self.n, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        a = 1.0 - _decay(self.t.gbm_up_to_halflife)
        prev = self.up_to_ew
        new = np.where(np.isnan(prev), up, prev + a * (up - prev))
        self.up_to_ew = np.where(act, new, prev)
        used = np.where(np.isnan(self.up_to_ew), up, np.rint(self.up_to_ew))
        return np.maximum(used, self.t.presence_stock).astype(np.int64)

    def step(self, weekday: int, sales: np.ndarray, on_hand: np.ndarray, on_order: np.ndarray,
             *, known: np.ndarray | None = None, stock_known: bool = True, day: date | None = None) -> np.ndarray:
        """One store day: observe sales (censored where on hand closed at 0), control, and order."""
        on_hand = np.asarray(on_hand, dtype=float)
        closed_out = (on_hand <= 0) if stock_known else None
        x = self.observe(weekday, sales, closed_out, known, day=day)
        k = np.ones(self.n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
        self.record_fill(float(np.asarray(sales, dtype=float)[k].sum()), float(x[k].sum()))
        return self.orders(on_hand + np.asarray(on_order, dtype=float), active=k, on_hand=on_hand)


def replay_history(engine: RestockEngine, series: np.ndarray, weekdays: Sequence[int], *,
                   calibrate: bool = True, lost_calibration: bool = True,
                   first_day: date | None = None, fit=None) -> float | None:
    """Feed a (SKUs x days) block of uncensored history to ``engine`` (SKUs in ``engine.skus`` order).

    With ``calibrate`` and enough history, two things are measured on the history's last days before they are fed
    (only the past is used): the share of lost demand the censored-demand estimate misses
    (:func:`calibrate_lost_scale`, sets ``engine.lost_scale``) and, if ``calibration_days`` > 0, the starting
    quantile level (:func:`calibrate_alpha`). Returns the calibrated level (``None`` when not calibrated).
    ``first_day`` dates the first column (the others follow day by day), for the day-of-month profile. ``fit``
    stands in for :func:`~shopfloor.planning.restock_gbm.fit_global` (same arguments; the planner passes one that
    reads its model cache).
    """
    series = np.asarray(series, dtype=float)
    weekdays = [int(w) for w in weekdays]
    days = series.shape[1]
    cal = engine.t.calibration_days if calibrate else 0
    lost_cal = engine.t.lost_calibration_days if calibrate and lost_calibration else 0
    cal = cal if days >= cal + 56 else 0
    lost_cal = lost_cal if days >= lost_cal + 56 else 0
    split = days - max(cal, lost_cal)
    if engine.t.restart_days > 0 and calibrate:
        engine.restart_level = restart_level(series, engine.t.restart_days)
    if first_day is not None and days:
        engine.day = first_day - timedelta(days=1)  # each observe below then advances it by one day
    gbm_from = days
    if engine.t.forecast_model == "gbm" and engine.gbm is None:
        if fit is None:
            from .restock_gbm import fit_global as fit
        engine.gbm = fit(series, weekdays, engine.horizon, first_day=first_day, lags=engine.t.gbm_lags,
                         yearly=engine.t.gbm_yearly)
        # the global model is read over the replay's last half year only (it is the slow part of a replay): the
        # spread is measured on the errors of the forecast in force
        gbm_from = max(days - 182, 0)
    for j in range(split):
        engine.gbm_on = engine.gbm_on or j >= gbm_from
        engine.observe(weekdays[j], series[:, j])
    alpha = None
    for j in range(split, days):
        engine.gbm_on = engine.gbm_on or j >= gbm_from
        left = days - j
        if lost_cal and left == lost_cal:
            engine.lost_scale = calibrate_lost_scale(engine, series[:, j:], weekdays[j:])
        if cal and left == cal:
            alpha = calibrate_alpha(engine, series[:, j:], weekdays[j:])
        engine.observe(weekdays[j], series[:, j])
    if alpha is not None:
        engine.set_alpha(alpha)
    return alpha


def restart_level(series: np.ndarray, idle_days: int) -> float:
    """Mean daily demand over the ``idle_days`` days starting at a *restart* (a day with demand after at least
    ``idle_days`` days without any), pooled over all restarts in ``series`` (SKUs x days, uncensored history) that
    have that many days after them; 0 when there is none. Unit-weighted (the mean, not the median), as the fill is."""
    x = np.asarray(series, dtype=float)
    n, days = x.shape
    if days < 2 * idle_days + 1:
        return 0.0
    pos = x > 0
    # days since the last positive day, before each day
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(x, axis=1)], axis=1)
    total = count = 0.0
    for i in np.flatnonzero(pos.any(axis=1)):
        days_pos = np.flatnonzero(pos[i])
        gaps = np.diff(days_pos)
        starts = days_pos[1:][gaps > idle_days]
        if days_pos[0] >= idle_days:
            starts = np.concatenate([[days_pos[0]], starts])
        starts = starts[starts + idle_days <= days]
        if starts.size:
            total += float((csum[i, starts + idle_days] - csum[i, starts]).sum())
            count += starts.size * idle_days
    return total / count if count else 0.0


_LOST_PRIOR = 0.002  # pseudo lost units (share of demand) on both sides of the ratio


def calibrate_lost_scale(engine: RestockEngine, demand: np.ndarray, weekdays: Sequence[int], *,
                         max_skus: int = 3000, burn_in: int = 28) -> float:
    """How many times the units truly lost on sold-out days exceed the engine's estimate of them.

    A copy of the engine (a sample of at most ``max_skus`` SKUs, controller on, the scale at 1) runs a lost-sales
    store on ``demand`` (the last days of its own history, not yet shown to it), seeing only sales and stock at
    close, as the agent does. After ``burn_in`` days the units it failed to serve are compared with the lost units
    it estimated on its sold-out days: ``(true + c) / (estimated + c)``, ``c`` = 0.2 % of demand (so that a
    history with few stock-outs says about 1), clipped to ``[1, max_lost_scale]``. Lumpy demand (a large order
    meeting a small shelf) gives a large ratio: the order's size never shows up in the sales.
    """
    n = engine.n
    if n == 0 or demand.shape[1] <= burn_in:
        return 1.0
    idx = np.arange(n) if n <= max_skus else np.sort(np.random.default_rng(0).choice(n, max_skus, replace=False))
    clone = engine.subset(idx)
    clone._logit, clone._sold_ew, clone._dem_ew = None, 0.0, 0.0
    clone.control_days = clone.orders_placed_days = 0
    clone.lost_scale = 1.0
    dem = np.asarray(demand, dtype=float)[idx]
    days = dem.shape[1]
    lead = clone.lead_time
    on_hand = clone.levels()["order_up_to"].astype(np.int64)
    pipeline = np.zeros(len(idx), dtype=np.int64)
    arrivals = np.zeros((len(idx), days + lead + 2), dtype=np.int64)
    true_lost = est_lost = total = 0.0
    for t in range(days):
        on_hand = on_hand + arrivals[:, t]
        pipeline -= arrivals[:, t]
        d = dem[:, t].astype(np.int64)
        sold = np.minimum(on_hand, d)
        on_hand = on_hand - sold
        if t % clone.review_days == 0:
            q = clone.step(weekdays[t], sold.astype(float), on_hand, pipeline).astype(np.int64)
        else:
            clone.observe(weekdays[t], sold.astype(float), on_hand <= 0)
            q = np.zeros(len(idx), dtype=np.int64)
        if t >= burn_in:
            true_lost += float((d - sold).sum())
            est_lost += float(np.maximum(clone.last_estimate - sold, 0.0).sum())
            total += float(d.sum())
        arrivals[:, t + lead + 1] += q
        pipeline += q
    c = _LOST_PRIOR * total
    if true_lost + est_lost <= 0:
        return 1.0
    return float(np.clip((true_lost + c) / (est_lost + c), 1.0, engine.t.max_lost_scale))


def _simulate_fill(engine: RestockEngine, demand: np.ndarray, weekdays: Sequence[int], burn_in: int) -> float:
    """Fill rate of ``engine`` (its quantile level fixed) run as a lost-sales store on ``demand``."""
    n, days = demand.shape
    lead = engine.lead_time
    lv = engine.levels()
    on_hand = lv["order_up_to"].astype(np.int64)
    pipeline = np.zeros(n, dtype=np.int64)
    arrivals = np.zeros((n, days + lead + 2), dtype=np.int64)
    sold_tot = dem_tot = 0.0
    for t in range(days):
        on_hand = on_hand + arrivals[:, t]
        pipeline -= arrivals[:, t]
        d = demand[:, t].astype(np.int64)
        sold = np.minimum(on_hand, d)
        on_hand = on_hand - sold
        if t >= burn_in:
            sold_tot += sold.sum()
            dem_tot += d.sum()
        q = engine.step(weekdays[t], sold.astype(float), on_hand, pipeline) if t % engine.review_days == 0 \
            else (engine.observe(weekdays[t], sold.astype(float), on_hand <= 0), np.zeros(n, dtype=np.int64))[1]
        arrivals[:, t + lead + 1] += q
        pipeline += q
    return sold_tot / dem_tot if dem_tot > 0 else 1.0


def calibrate_alpha(engine: RestockEngine, demand: np.ndarray, weekdays: Sequence[int], *, max_skus: int = 3000,
                    iterations: int = 7) -> float:
    """The common quantile level that meets ``engine.fill_rate`` on the last days of its own history.

    Copies of the engine (a sample of at most ``max_skus`` SKUs, the controller off) run a lost-sales store on
    ``demand`` (the history's last days, which the engine has not been shown yet), seeing only what such a store
    sees; the level is bisected in logit space until the simulated fill after a 28-day burn-in equals the target.
    Only the past is used, so this is a warm start, not look-ahead.
    """
    from dataclasses import replace

    n = engine.n
    idx = np.arange(n) if n <= max_skus else np.sort(np.random.default_rng(0).choice(n, max_skus, replace=False))
    lo, hi = _logit(engine.t.min_alpha), _logit(engine.t.max_alpha)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        clone = engine.subset(idx)
        clone.t = replace(clone.t, controller_gain=0.0)
        clone._logit = mid
        fill = _simulate_fill(clone, demand[idx], weekdays, burn_in=28)
        lo, hi = (lo, mid) if fill >= engine.fill_rate else (mid, hi)
    return float(1.0 / (1.0 + math.exp(-0.5 * (lo + hi))))


__all__ = ["ALLOCATIONS", "EngineTuning", "MARGINAL_GRID", "RestockEngine", "calibrate_alpha", "calibrate_lost_scale",
           "censored_demand", "lost_sales_shortfall", "marginal_order_up_to", "nb_cdf", "nb_quantiles", "order_levels",
           "replay_history", "restart_level"]
