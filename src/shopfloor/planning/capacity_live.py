"""The backtested planner, live: how many replicas :class:`PredictivePlanner` asks for at this minute.

``capacity backtest`` scores :class:`PredictivePlanner` replayed minute by minute through :func:`simulate`. This
module runs the same replay on live traffic, so that the replica count a cluster follows is the one the backtest
measured: the answer at minute ``now`` is what the planner, replayed over every recorded minute from the *anchor*
up to ``now`` (absent minutes are zero traffic, as in the backtest), requests at ``now``. KEDA polls it through a
``metrics-api`` trigger (``GET /v1/plans/capacity/desired``, see :mod:`shopfloor.planning.k8s`).

* **Anchor.** The replay starts ``history_days`` before the start of the current UTC day (or at the first recorded
  minute, if later), so every process and every call within a day replays from the same minute and gives the same
  answer. At midnight the anchor moves on by a day and the replay starts afresh (about 0.4 s for 8 days).
* **Incremental.** The replay state is kept between calls and advanced over the minutes that have arrived since
  (a poll: about 2.5 ms, mostly the copy below). The last ``settle_minutes`` minutes may still grow (request
  rollups are flushed every few seconds): they are replayed on a copy of the state, never into it. If an older,
  already replayed minute changed (a late rollup), the replay starts again from the anchor.
* **Differences from the backtest**, by design: the replay's replica set keeps ``min_replicas`` (the backtest uses
  1), the answer is capped at ``max_replicas``, and the daily re-anchoring resets the planner's running state
  (its cost cap, error pool). ``bench/capacity_live_replay.py`` measures the live form, re-anchoring included,
  against the continuous backtest on the same traces.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .campaigns import CampaignEvent, events_on_grid
from .capacity import (
    CapacityInputError,
    CapacityPolicy,
    PredictiveConfig,
    PredictivePlanner,
    ReplicaSet,
    hpa_desired,
)

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class LiveDecision:
    """The planner's replica count for the minute ``at``.

    desired_replicas: what to run (``planner_replicas`` capped at the policy's ``max_replicas``).
    planner_replicas: what the replayed planner requests at ``at``.
    reactive_replicas: the HPA signal of the last recorded minute alone (for comparison; the planner never asks
        for fewer, except while a scale-in waits out its window).
    anchor / replayed_minutes: where the replay starts and how many minutes it has replayed up to ``at``.
    """

    at: datetime
    desired_replicas: int
    planner_replicas: int
    reactive_replicas: int
    anchor: datetime
    replayed_minutes: int

    @property
    def capped(self) -> bool:
        return self.planner_replicas > self.desired_replicas

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "desired_replicas": self.desired_replicas,
            "planner_replicas": self.planner_replicas,
            "capped_at_max_replicas": self.capped,
            "reactive_replicas": self.reactive_replicas,
            "anchor": self.anchor.isoformat(),
            "replayed_minutes": self.replayed_minutes,
        }


class _Replay:
    """One replay of the planner over a replica set: the loop body of :func:`simulate`, one minute per step."""

    def __init__(self, planner: PredictivePlanner, lag: int, min_replicas: int) -> None:
        self.planner = planner
        self.replicas = ReplicaSet(lag, initial_ready=min_replicas)
        self.min_replicas = min_replicas
        self.t = 0  # the next minute to decide
        self.last_requested = min_replicas

    def step(self, prev: float | None) -> int:
        """Observe the minute before ``t`` (``None`` at ``t == 0``), decide minute ``t``; returns the request."""
        t = self.t
        if t > 0:
            self.planner.observe(float(prev))
        target = max(int(self.planner.target(t, len(self.replicas), self.replicas.ready(t))), self.min_replicas)
        self.replicas.scale_to(target, t)
        self.t = t + 1
        self.last_requested = len(self.replicas)
        return self.last_requested


class LivePlanner:
    """The replica count :class:`PredictivePlanner` asks for now, from a per-minute request series (thread-safe)."""

    def __init__(
        self,
        policy: CapacityPolicy,
        config: PredictiveConfig | None = None,
        *,
        history_days: int = 8,
        settle_minutes: int = 2,
        events: Sequence[CampaignEvent] = (),
    ) -> None:
        policy.validate()
        if history_days < 1:
            raise CapacityInputError("history_days", "must be at least 1 day")
        if settle_minutes < 0:
            raise CapacityInputError("settle_minutes", "must be >= 0")
        self.policy = policy
        self.config = config or PredictiveConfig()
        self.history_days = history_days
        self.settle_minutes = settle_minutes
        self.events = list(events)
        self._lock = threading.Lock()
        self._anchor: datetime | None = None
        self._replay: _Replay | None = None
        self._fed = np.zeros(0)  # the minutes replayed into the kept state (each observed once)
        self.rebuilds = 0  # fresh replays from the anchor (first call, a new day, a late rollup)

    # -- the anchor -----------------------------------------------------------------------------------------------

    def anchor_for(self, now: datetime, first_minute: datetime | None) -> datetime:
        """Start of ``now``'s UTC day less ``history_days``, or the first recorded minute if later (never after
        ``now``)."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        anchor = day - timedelta(days=self.history_days)
        if first_minute is not None:
            anchor = max(anchor, first_minute)
        return min(anchor, now)

    # -- decisions ------------------------------------------------------------------------------------------------

    def decide(self, series: pd.Series, now: datetime) -> LiveDecision:
        """The decision for the minute holding ``now`` from ``series`` (per-minute counts indexed by UTC minute;
        minutes at or after that minute are ignored, absent ones are zero)."""
        now = _utc_minute(now)
        s = series
        if s.index.tz is None:
            s = s.tz_localize("UTC")
        s = s[s.index < pd.Timestamp(now)]
        s = s[s.notna()]
        first = None
        if not s.empty:
            first = _utc_minute(s.index.min().to_pydatetime())
        anchor = self.anchor_for(now, first)
        n = int((now - anchor).total_seconds() // 60)
        values = np.zeros(n)
        if n and not s.empty:
            s = s[s.index >= pd.Timestamp(anchor)]
            pos = ((s.index - pd.Timestamp(anchor)) // pd.Timedelta(minutes=1)).to_numpy(dtype=np.int64)
            np.add.at(values, pos, s.to_numpy(dtype=float))
        if (values < 0).any() or not np.isfinite(values).all():
            raise CapacityInputError("series", "request counts must be finite and >= 0")
        return self.decide_grid(anchor, values)

    def decide_grid(self, anchor: datetime, values: np.ndarray) -> LiveDecision:
        """The decision for minute ``anchor + len(values)`` from the minutes ``anchor .. anchor + len(values) - 1``.

        Calls for a later minute with the same anchor continue the kept replay; a new anchor starts a new one.
        """
        if anchor.tzinfo is None:
            raise CapacityInputError("anchor", "must be timezone-aware (UTC)")
        values = np.asarray(values, dtype=float)
        n = len(values)
        with self._lock:
            state = self._state_for(anchor, values)
            settled = max(n - self.settle_minutes, 0)
            # Minute t observes minute t - 1, so minutes before ``settled`` are final: step through t <= settled.
            while state.t <= min(settled, n):
                state.step(values[state.t - 1] if state.t > 0 else None)
            self._fed = values[: state.t - 1].copy() if state.t > 0 else np.zeros(0)
            if state.t - 1 == n:
                requested = state.last_requested  # ``now`` itself is settled (settle_minutes == 0)
            else:
                scratch = copy.deepcopy(state)
                while scratch.t <= n:
                    scratch.step(values[scratch.t - 1] if scratch.t > 0 else None)
                requested = scratch.last_requested
        policy = self.policy
        last = float(values[-1]) if n else 0.0
        tu = Fraction(policy.target_utilization).limit_denominator(1000)
        reactive = max(hpa_desired(last, 1, policy.capacity_per_minute, tu), policy.min_replicas)
        return LiveDecision(
            at=anchor + timedelta(minutes=n),
            desired_replicas=min(requested, policy.max_replicas),
            planner_replicas=requested,
            reactive_replicas=min(reactive, policy.max_replicas),
            anchor=anchor,
            replayed_minutes=n,
        )

    def _state_for(self, anchor: datetime, values: np.ndarray) -> _Replay:
        state = self._replay
        fresh = (
            state is None
            or anchor != self._anchor
            or len(values) < len(self._fed)
            or state.t - 1 > len(values)
            or not np.array_equal(values[: len(self._fed)], self._fed)
        )
        if fresh:
            # The kept state lives until the anchor moves (at most history_days + 1 days): cover that, and beyond.
            span = (self.history_days + 3) * MINUTES_PER_DAY
            events = (events_on_grid(self.events, anchor, max(span, len(values) + MINUTES_PER_DAY))
                      if self.events else [])
            planner = PredictivePlanner(
                self.policy.capacity_per_minute,
                self.policy.lag_minutes,
                self.config,
                target_utilization=Fraction(self.policy.target_utilization).limit_denominator(1000),
                events=events,
            )
            state = self._replay = _Replay(planner, self.policy.lag_minutes, self.policy.min_replicas)
            self._anchor = anchor
            self._fed = np.zeros(0)
            self.rebuilds += 1
        return state


def _utc_minute(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise CapacityInputError("now", "must be timezone-aware (UTC)")
    return value.astimezone(timezone.utc).replace(second=0, microsecond=0)


__all__ = ["LiveDecision", "LivePlanner"]
