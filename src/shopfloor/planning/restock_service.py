"""Restock planning service: reads positions and demand history through a small port, fits the demand model,
and builds the plan. The database adapter lives in ``shopfloor.store.restock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Mapping, Protocol

import numpy as np

from ..domain.clock import Clock
from .demand_model import DemandModelConfig, RollingDemandModel
from .lead_time import DemandOutlook
from .restock import CatalogEntry, PolicyBook, RestockPlan, StockPosition, build_restock_plan

Key = tuple[str, str]


class RestockDataSource(Protocol):
    """What the planner needs from storage."""

    def positions(self) -> list[StockPosition]:
        """Every SKU x warehouse stock row with its open purchase orders."""

    def catalog(self) -> dict[str, CatalogEntry]: ...

    def daily_demand(self, first_day: date, last_day: date) -> dict[Key, dict[date, int]]:
        """Units demanded per SKU x warehouse per UTC day in ``[first_day, last_day]`` (missing = 0)."""


def outlooks_from_history(
    history: Mapping[Key, np.ndarray],
    last_day: date,
    horizons: Mapping[Key, int],
    outlook_days: int,
    config: DemandModelConfig | None = None,
) -> dict[Key, DemandOutlook]:
    """Fit the rolling demand model per series on daily history ending ``last_day`` (inclusive).

    ``horizons[key]`` is that series' protection interval (lead time + review), which is the window whose
    forecast errors calibrate its dispersion. Returns outlooks starting the day after ``last_day`` and
    covering ``max(outlook_days, horizon)`` days.
    """
    out: dict[Key, DemandOutlook] = {}
    groups: dict[int, list[Key]] = {}
    for key in history:
        groups.setdefault(max(int(horizons.get(key, 8)), 1), []).append(key)
    for horizon, keys in groups.items():
        series = np.stack([np.asarray(history[k], dtype=float) for k in keys])
        days = series.shape[1]
        first = last_day - timedelta(days=days - 1)
        model = RollingDemandModel(len(keys), horizon, config)
        for i in range(days):
            model.observe(series[:, i], (first + timedelta(days=i)).weekday())
        span = max(outlook_days, horizon)
        means = model.daily_means(span)
        size = model.dispersion()
        for j, key in enumerate(keys):
            out[key] = DemandOutlook(means[j], float(size[j]))
    return out


@dataclass
class RestockPlanner:
    """Builds today's restock plan from a :class:`RestockDataSource` and a :class:`PolicyBook`."""

    source: RestockDataSource
    policies: PolicyBook
    clock: Clock
    history_days: int = 182
    outlook_days: int = 56
    risk_threshold: float = 0.5
    max_alternatives: int = 3
    model_config: DemandModelConfig | None = None

    def plan(self, *, sku: str | None = None, warehouse: str | None = None) -> RestockPlan:
        """Plan as of today (UTC). History runs through yesterday, the last complete day."""
        today = self.clock.now().date()
        last_day = today - timedelta(days=1)
        first_day = last_day - timedelta(days=self.history_days - 1)
        positions = self.source.positions()
        catalog = self.source.catalog()
        demand = self.source.daily_demand(first_day, last_day)
        history: dict[Key, np.ndarray] = {}
        horizons: dict[Key, int] = {}
        for pos in positions:
            key = (pos.sku, pos.warehouse)
            by_day = demand.get(key, {})
            history[key] = np.array(
                [by_day.get(first_day + timedelta(days=i), 0) for i in range(self.history_days)], dtype=float
            )
            pol = self.policies.for_sku(pos.sku, pos.supplier)
            horizons[key] = pol.lead_time_days + pol.review_days
        # the model's first forecast day is today; the plan's day 1 is tomorrow, so fit one extra day and drop it
        need = max([self.outlook_days, *horizons.values()]) + 1
        raw = outlooks_from_history(history, last_day, horizons, need, self.model_config)
        outlooks = {k: DemandOutlook(o.daily_means[1:], o.dispersion) for k, o in raw.items()}
        plan = build_restock_plan(
            positions, outlooks, catalog, self.policies, today,
            risk_threshold=self.risk_threshold, max_alternatives=self.max_alternatives,
        )
        if sku is None and warehouse is None:
            return plan
        keep = lambda x: (sku is None or x.sku == sku) and (warehouse is None or x.warehouse == warehouse)  # noqa: E731
        return RestockPlan(plan.as_of, tuple(filter(keep, plan.lines)), tuple(filter(keep, plan.risks)))
