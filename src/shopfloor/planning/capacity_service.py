"""Capacity planning from the database: request rollups in, plan + manifests + cache-warm list out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

import pandas as pd
from sqlalchemy import Engine

from ..domain.clock import Clock
from ..store.capacity import recent_order_units, request_totals
from .capacity import (
    CapacityPlan,
    WarmEntry,
    WarmUrlTemplates,
    cache_warm_list,
    demand_frame_from_recent_counts,
    plan_capacity,
    policy_from_settings,
)
from .campaigns import CampaignEvent
from .capacity_live import LiveDecision, LivePlanner
from .k8s import hpa_fallback, options_from_settings, scaled_object, trigger_authentication


def series_from_totals(rows: list[tuple[datetime, int]]) -> pd.Series:
    """``request_totals`` rows as a per-minute UTC series (absent minutes are not filled here)."""
    if not rows:
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float, name="y")
    idx = pd.DatetimeIndex([pd.Timestamp(m) for m, _ in rows])
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return pd.Series([float(c) for _, c in rows], index=idx, name="y")


def service_for(container: Any) -> "CapacityService":
    """The container's registered capacity service (``services["capacity"]``), or one on its engine."""
    return container.services.get("capacity") or CapacityService(container.engine, container.settings,
                                                                 container.clock)


def desired_now(container: Any, svc: "CapacityService | None" = None) -> LiveDecision:
    """What the predictive planner asks for this minute, from the process's :class:`LivePlanner`, kept in the
    container under ``capacity.live``: its replay state is what makes the next call cheap, so the API routes, the
    dashboard, the demo and the tower's ``scale`` action share one."""
    svc = svc or service_for(container)
    live = container.services.get("capacity.live")
    if live is None:
        live = container.services.setdefault("capacity.live", svc.live_planner())
    return svc.desired(live)


@dataclass
class CapacityService:
    """Builds the capacity plan from the ``request_minutes`` rollups (``settings`` = ``shopfloor.config.Settings``)."""

    engine: Engine
    settings: Any
    clock: Clock

    def traffic(self, now: datetime | None = None) -> pd.Series:
        now = now or self.clock.now()
        since = now - timedelta(days=self.settings.capacity_history_days)
        return series_from_totals(request_totals(self.engine, since, now))

    def plan(
        self, now: datetime | None = None, *, events: Sequence[CampaignEvent] = (), **policy_overrides: Any
    ) -> CapacityPlan:
        """Plan from the request rollups; ``events`` is an optional campaign calendar to pre-scale for."""
        now = now or self.clock.now()
        policy = policy_from_settings(self.settings, **policy_overrides)
        return plan_capacity(
            self.traffic(now), policy, now=now, history_days=self.settings.capacity_history_days, events=events
        )

    def live_planner(self, *, events: Sequence[CampaignEvent] = ()) -> LivePlanner:
        """A :class:`LivePlanner` on the settings' policy (keep it: its replay state makes the next call cheap)."""
        policy = policy_from_settings(self.settings)
        return LivePlanner(policy, history_days=self.settings.capacity_history_days, events=events)

    def desired(self, live: LivePlanner, now: datetime | None = None) -> LiveDecision:
        """The predictive planner's replica count for the current minute, replayed over the request rollups from
        the live planner's anchor (every process and call of a UTC day replays from the same minute)."""
        now = now or self.clock.now()
        since = live.anchor_for(now, None)
        return live.decide(series_from_totals(request_totals(self.engine, since, now)), now)

    def manifests(self, plan: CapacityPlan, **option_overrides: Any) -> dict[str, dict]:
        options = options_from_settings(self.settings, **option_overrides)
        out = {"scaledobject": scaled_object(plan, options), "hpa_fallback": hpa_fallback(plan, options)}
        auth = trigger_authentication(options)
        if auth is not None:
            out["trigger_authentication"] = auth
        return out

    def warm_list(
        self,
        plan: CapacityPlan,
        demand_forecast: pd.DataFrame | None = None,
        *,
        lookback_minutes: int = 24 * 60,
    ) -> tuple[list[WarmEntry], str]:
        """Warm list for the plan's first slot window. Uses ``demand_forecast`` (``unique_id, ds, mean``) when
        given, otherwise recent order counts. Returns the entries and which source was used."""
        s = self.settings
        templates = WarmUrlTemplates(
            product=s.capacity_warm_product_url,
            promise=s.capacity_warm_promise_url,
            default_country=s.capacity_warm_default_country,
        )
        start = plan.generated_at
        end = start + timedelta(minutes=plan.policy.horizon_minutes)
        source = "demand_forecast"
        if demand_forecast is None:
            units = recent_order_units(self.engine, start - timedelta(minutes=lookback_minutes))
            demand_forecast = demand_frame_from_recent_counts(
                units,
                window_start=start,
                window_minutes=plan.policy.horizon_minutes,
                lookback_minutes=lookback_minutes,
            )
            source = "recent_orders"
        entries = cache_warm_list(
            demand_forecast, window_start=start, window_end=end, top_n=s.capacity_warm_top_n, templates=templates
        )
        return entries, source


class PlannerCapacitySource:
    """The control tower's ``CapacityPlanSource`` (the ``scale`` action): ``replicas`` is what the predictive
    planner asks for now (the live planner, as KEDA's planner trigger reads it), with the next hours' slot plan
    beside it. How many replicas run is not known to this process (``current_replicas`` is ``None``) unless the
    integrator binds a source that asks the cluster."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def current_replicas(self) -> int | None:
        return None

    def capacity_plan(self) -> dict[str, Any]:
        svc = service_for(self.container)
        decision = desired_now(self.container, svc)
        plan = svc.plan().to_dict()
        return {"replicas": decision.desired_replicas, "source": "predictive_planner",
                "planner_now": decision.to_dict(), "slot_plan": plan}
