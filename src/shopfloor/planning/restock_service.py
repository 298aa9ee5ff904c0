"""Restock planning service: reads positions and demand history through a small port, replays the history
through the restock engine (:mod:`shopfloor.planning.restock_engine`) and builds the plan. The database adapter
lives in ``shopfloor.store.restock``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable, Hashable, Protocol

import numpy as np

from ..domain.clock import Clock
from . import restock_gbm
from .lead_time import DemandOutlook
from .restock import (
    CatalogEntry,
    PolicyBook,
    ReplenishmentPolicy,
    RestockPlan,
    StockPosition,
    build_restock_plan,
    check_fill_rate,
)
from .restock_cache import HistoryStamp, stamp_history
from .restock_engine import EngineTuning, RestockEngine, order_levels, replay_history

Key = tuple[str, str]
Levels = tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]


class ModelCache(Protocol):
    """Where the planner keeps fitted models and replayed levels between plans
    (:class:`~shopfloor.planning.restock_cache.RestockModelCache`)."""

    def model(self, key: Hashable, stamp: HistoryStamp, fit: Callable[[], Any]) -> tuple[Any, str]: ...

    def levels(self, key: Hashable, compute: Callable[[], Levels]) -> Levels: ...


class RestockDataSource(Protocol):
    """What the planner needs from storage."""

    def positions(self) -> list[StockPosition]:
        """Every SKU x warehouse stock row with its open purchase orders."""

    def catalog(self) -> dict[str, CatalogEntry]: ...

    def daily_demand(self, first_day: date, last_day: date) -> dict[Key, dict[date, int]]:
        """Units demanded per SKU x warehouse per UTC day in ``[first_day, last_day]`` (missing = 0)."""


@dataclass
class RestockPlanner:
    """Builds today's restock plan from a :class:`RestockDataSource` and a :class:`PolicyBook`.

    The demand model, its spread and the fill-rate steering are those of
    :class:`~shopfloor.planning.restock_engine.RestockEngine`, the engine ``shopfloor restock agent`` runs and the
    backtest measures: the planner replays the order history through one engine per (lead time, review period,
    fill-rate target, order cap) group and plans every SKU x warehouse of the group at the engine's common
    quantile level. ``fill_rate`` overrides every policy's fill-rate target (``restock plan --fill-rate``,
    ``GET /v1/plans/restock?fill_rate=``). Order history carries no record of the stock on each past day, so a
    plan treats its history as uncensored and starts the quantile level where the negative-binomial fill
    formula puts the target; a store that runs the agent day by day also gets the integral correction on
    observed fill.

    With a ``cache`` the fitted global model and each group's replayed levels are kept between plans, keyed on the
    history they came from (:mod:`~shopfloor.planning.restock_cache`): a second plan on the same history replays
    nothing, and a plan on a later day refits only past the cache's refit cadence.
    """

    source: RestockDataSource
    policies: PolicyBook
    clock: Clock
    history_days: int = 182
    outlook_days: int = 56
    risk_threshold: float = 0.5
    max_alternatives: int = 3
    tuning: EngineTuning | None = None
    fill_rate: float | None = None
    cache: ModelCache | None = None

    def plan(self, *, sku: str | None = None, warehouse: str | None = None,
             fill_rate: float | None = None) -> RestockPlan:
        """Plan as of today (UTC). History runs through yesterday, the last complete day."""
        target_override = fill_rate if fill_rate is not None else self.fill_rate
        if target_override is not None:
            check_fill_rate(target_override)
        today = self.clock.now().date()
        last_day = today - timedelta(days=1)
        first_day = last_day - timedelta(days=self.history_days - 1)
        positions = self.source.positions()
        catalog = self.source.catalog()
        demand = self.source.daily_demand(first_day, last_day)
        weekdays = [(first_day + timedelta(days=i)).weekday() for i in range(self.history_days)]
        base = self.tuning or self.policies.engine_tuning()
        groups: dict[tuple[int, int, float, float], list[StockPosition]] = {}
        for pos in positions:
            pol = self.policies.for_sku(pos.sku, pos.supplier)
            target = target_override if target_override is not None else pol.fill_rate_target
            groups.setdefault((pol.lead_time_days, pol.review_days, float(target), pol.order_cap), []).append(pos)
        outlooks: dict[Key, DemandOutlook] = {}
        effective: dict[Key, ReplenishmentPolicy] = {}
        levels: dict[Key, tuple[int, int]] = {}
        need_days = self.outlook_days + 1
        for (lead, review, target, cap), members in groups.items():
            tuning = replace(base, order_cap=cap)
            keys = [(p.sku, p.warehouse) for p in members]
            history = np.zeros((len(keys), self.history_days))
            for j, key in enumerate(keys):
                by_day = demand.get(key, {})
                for d, units in by_day.items():
                    i = (d - first_day).days
                    if 0 <= i < self.history_days:
                        history[j, i] = units
            means, size, alpha, up_to, rop = self._group_levels(
                keys, history, weekdays, first_day, lead, review, target, tuning, max(need_days, lead + review + 1))
            for j, (pos, key) in enumerate(zip(members, keys)):
                outlooks[key] = DemandOutlook(means[j], float(size[j]))
                levels[key] = (int(rop[j]), int(up_to[j]))
                pol = self.policies.for_sku(pos.sku, pos.supplier)
                effective[key] = replace(pol, service_level=alpha, fill_rate=target)
        plan = build_restock_plan(
            positions, outlooks, catalog, self.policies, today, policy_for=effective, levels=levels,
            risk_threshold=self.risk_threshold, max_alternatives=self.max_alternatives,
        )
        if sku is None and warehouse is None:
            return plan
        keep = lambda x: (sku is None or x.sku == sku) and (warehouse is None or x.warehouse == warehouse)  # noqa: E731
        return RestockPlan(plan.as_of, tuple(filter(keep, plan.lines)), tuple(filter(keep, plan.risks)))

    def _group_levels(self, keys: list[Key], history: np.ndarray, weekdays: list[int], first_day: date,
                      lead: int, review: int, target: float, tuning: EngineTuning, need: int) -> Levels:
        """One policy group's daily means (tomorrow first, ``need - 1`` days), NB sizes of the protection interval,
        quantile level, order-up-to levels and reorder points, from the history replayed through the engine (or
        the cache, when it holds them for this very history, policy and model)."""
        fit = None
        token = None
        stamp = None
        if self.cache is not None:
            stamp = stamp_history(keys, history, first_day)
            if tuning.forecast_model == "gbm":
                model, token = self.cache.model(
                    (stamp.keys, len(stamp.days), lead + review, tuning.gbm_lags, tuning.gbm_yearly), stamp,
                    lambda: restock_gbm.fit_global(history, weekdays, lead + review, first_day=first_day,
                                                   lags=tuning.gbm_lags, yearly=tuning.gbm_yearly))
                fit = lambda *args, **kwargs: model  # noqa: E731

        def compute() -> Levels:
            engine = RestockEngine(lead_time=lead, review_days=review, fill_rate=target, tuning=tuning)
            engine.ensure(f"{k[0]}@{k[1]}" for k in keys)
            # a one-off plan has no stock records and no controller: the lost-demand scale would change nothing
            replay_history(engine, history, weekdays, lost_calibration=False, first_day=first_day, fit=fit)
            # the engine's first forecast day is today; the plan's day 1 is tomorrow
            engine.levels()  # fixes the starting quantile level for this group
            means = np.maximum(engine.daily_means(need)[:, 1:], 0.0)
            m_prot = means[:, : lead + review].sum(axis=1)
            size = engine.sizes(m_prot)
            alpha = min(max(engine.alpha, engine.t.min_alpha), engine.t.max_alpha)
            up_to, rop = order_levels(alpha, means[:, :lead].sum(axis=1), m_prot, size, engine.t, lead_time=lead)
            return means, size, alpha, up_to, rop

        if self.cache is None:
            return compute()
        return self.cache.levels((stamp.digest, lead, review, target, tuning, need, token), compute)

