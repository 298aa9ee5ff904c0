"""Multi-trace capacity backtest with selection kept apart from reporting.

One planner configuration must serve every trace. The protocol makes that checkable:

1. **Cases.** Each real trace, plus (optionally) the same trace with seeded synthetic flash crowds
   (:mod:`shopfloor.forecast.flash_crowds`) for each requested seed. Every case gets its own
   ``C = ceil(peak minute / 20)`` (unless one is given) and the same lag.
2. **Selection.** When traces are named for selection, each candidate configuration in :data:`CANDIDATES` is
   replayed on the *selection cases* only (those traces, real and with the first crowd seed); the chosen one is
   the candidate closest to both targets on its worst selection case (:func:`select_config`). Nothing else is
   looked at.
3. **Report.** The chosen configuration is replayed on every case, and each row says whether that case was seen
   by the selection (``in-sample``) or not (``out-of-sample``). Without selection the default configuration is
   reported, and the rows of the traces the defaults were tuned on (:data:`DEFAULTS_CHOSEN_ON`) say so.

Both planners replay each case in the same run, so every ratio is against a baseline measured alongside it. Each
row also carries the issue's ten-line yardstick (:class:`~shopfloor.planning.capacity.SeasonalRatioHeuristic`, the
``heuristic_*`` columns), replayed on the same case: it is the bar to beat on traces nobody tuned for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

import numpy as np

from ..forecast.flash_crowds import FlashCrowdSpec, inject_flash_crowds
from ..forecast.traffic import OnlineForecastConfig
from .campaigns import CampaignEvent, MinuteEvent, events_on_grid
from .capacity import BacktestReport, CapacityInputError, PredictiveConfig, run_backtest

#: Targets from the product's capacity promise: at most this share of the reactive HPA's violation-minutes, at
#: most this multiple of its replica-minutes.
TARGET_VIOLATION_RATIO = 0.30
TARGET_REPLICA_MINUTES_RATIO = 1.10

#: Traces (file-name fragments) the default configuration was tuned on, with crowd seed 1: rows built from them
#: are in-sample when the defaults are reported.
DEFAULTS_CHOSEN_ON = ("nasa", "clarknet", "standin-episodes-100")
DEFAULTS_CHOSEN_ON_SEEDS = (1,)


def _previous_default(**changes: Any) -> PredictiveConfig:
    """The default before the relaxed floor (``echo2-w5-trim3``): the HPA's own floor everywhere, one band, no burst
    memory (every field that later defaults changed is pinned, so the candidate stays what its name says)."""
    base = dict(
        floor_utilization=0.0, relaxed_band_quantile=0.0, surge_regime_minutes=0, boot_aware=False,
        echo_base_mismatch=0.0, burst_memory_minutes=0,
        forecast=OnlineForecastConfig(quantile=0.95, outlier_factor=3.0),
    )
    return PredictiveConfig(**{**base, **changes})


def _relaxed(
    utilization: float = 0.85, *, boot_aware: bool = True, burst: int = 0, quantile: float = 0.96
) -> PredictiveConfig:
    return PredictiveConfig(
        floor_utilization=utilization, floor_relax_from=3, relaxed_band_quantile=0.98, surge_regime_minutes=60,
        boot_aware=boot_aware, echo_base_mismatch=20.0, burst_memory_minutes=burst, burst_memory_drop=3.0,
        forecast=OnlineForecastConfig(quantile=quantile, outlier_factor=3.0),
    )


#: The grid selection chooses from. ``echo2-w5-trim3`` is the previous default (surge echo at 2x yesterday's hour
#: with a 5-minute window, surge-sized errors kept out of the band, the HPA's 70 % floor everywhere, band quantile
#: 0.95); ``-guard`` adds the echo's baseline check (no echo when yesterday's reference hour and today's last hour
#: differ more than 20-fold, i.e. after an outage). The ``relax`` candidates keep that echo and guard and relax the
#: reactive floor outside surges above 3 replicas to ``floor_utilization`` (0.85 or 0.80), with the band at the
#: 0.98 quantile there and 0.96 elsewhere, the HPA's floor for 60 minutes after a surge shows, and scale-up for
#: the minute new replicas are ready (``boot_aware``; ``-noboot``: for the whole boot window). ``-burstN`` adds the
#: burst memory (the floor keeps the replicas the largest of the last N minutes needed, outside a surge regime,
#: until traffic falls 3-fold below it); ``-q0.955`` reads the band at the 0.955 quantile to pay for it. Everything else
#: (scale-in hold 5 minutes, cost cap 1.15, no slope extrapolation) stays at its default.
CANDIDATES: dict[str, PredictiveConfig] = {
    "echo2-w5-trim3": _previous_default(),
    "echo2-w5-trim3-guard": _previous_default(echo_base_mismatch=20.0),
    "relax0.85": _relaxed(0.85),
    "relax0.85-noboot": _relaxed(0.85, boot_aware=False),
    "relax0.80": _relaxed(0.80),
    "relax0.85-burst20": _relaxed(0.85, burst=20),
    "relax0.85-burst30": _relaxed(0.85, burst=30),
    "relax0.85-burst30-q0.955": _relaxed(0.85, burst=30, quantile=0.955),
}


@dataclass
class TraceCase:
    """One row of the table: a real trace or a real trace with synthetic crowds (``seed``)."""

    name: str
    trace: str
    values: np.ndarray
    start: datetime
    seed: int | None = None
    events: list[MinuteEvent] = field(default_factory=list)
    crowd_mask: np.ndarray | None = None
    crowds: int = 0

    @property
    def synthetic(self) -> bool:
        return self.seed is not None


def build_cases(
    traces: Sequence[tuple[str, np.ndarray, datetime]],
    *,
    crowd_seeds: Sequence[int] = (),
    spec: FlashCrowdSpec | None = None,
    calendar: Sequence[CampaignEvent] = (),
    crowd_calendar: bool = False,
) -> list[TraceCase]:
    """Cases for ``traces`` (name, per-minute values, UTC start of the first minute), each also with crowds.

    ``calendar`` events are placed on each trace's minute grid (those outside it are dropped). With
    ``crowd_calendar`` the injected crowds are also announced as calendar events (kind ``recurring`` or
    ``irregular``, no uplift: the planner learns it from the kind's past crowds), as a marketing team would know its
    own campaigns.
    """
    cases: list[TraceCase] = []
    for name, values, start in traces:
        values = np.asarray(values, dtype=float)
        base_events = events_on_grid(calendar, start, len(values)) if calendar else []
        cases.append(TraceCase(name=name, trace=name, values=values, start=start, events=list(base_events)))
        for seed in crowd_seeds:
            inj = inject_flash_crowds(values, seed=seed, spec=spec)
            events = list(base_events)
            if crowd_calendar:
                events += [MinuteEvent(start=c.start, end=c.end, kind=c.kind) for c in inj.crowds]
            cases.append(
                TraceCase(
                    name=f"{name}+crowds(seed={seed})",
                    trace=name,
                    values=inj.values,
                    start=start,
                    seed=seed,
                    events=events,
                    crowd_mask=inj.mask,
                    crowds=len(inj.crowds),
                )
            )
    return cases


def default_capacity(values: np.ndarray) -> float:
    """``C = ceil(peak minute / 20)`` (at least 1)."""
    return float(max(1, math.ceil(float(np.max(values)) / 20.0)))


def replay_case(
    case: TraceCase,
    config: PredictiveConfig,
    *,
    lag: int,
    capacity: float | None = None,
    heuristic: bool = False,
    calendar: bool = True,
) -> BacktestReport:
    c = capacity if capacity is not None else default_capacity(case.values)
    return run_backtest(
        case.values, capacity=c, lag=lag, config=config, start=case.start,
        events=case.events if calendar else (), heuristic=heuristic,
    )


def _matches(trace: str, fragments: Sequence[str]) -> bool:
    low = trace.lower()
    return any(f.lower() in low for f in fragments)


def is_selection_case(case: TraceCase, select_on: Sequence[str], seeds: Sequence[int]) -> bool:
    return _matches(case.trace, select_on) and (case.seed is None or case.seed in seeds)


@dataclass
class Selection:
    """Which candidate was chosen on which cases, with every candidate's worst ratios there."""

    chosen: str
    cases: list[str]
    scores: dict[str, dict[str, float | None]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_config(
    cases: Sequence[TraceCase],
    *,
    lag: int,
    candidates: dict[str, PredictiveConfig] | None = None,
    capacity: float | None = None,
    violation_bound: float = TARGET_VIOLATION_RATIO,
    cost_bound: float = TARGET_REPLICA_MINUTES_RATIO,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, PredictiveConfig, Selection]:
    """Choose one configuration on ``cases`` only (see the module docstring for the rule).

    Each candidate's *target distance* is its worst, over the cases, of ``violation ratio / violation_bound`` and
    ``(replica-minutes ratio - 1) / (cost_bound - 1)``: below 1 means both targets hold on every case. The candidate
    with the smallest distance is chosen (ties: the cheaper).
    """
    if not cases:
        raise CapacityInputError("select_on", "no trace matches the selection names")
    candidates = candidates or CANDIDATES
    scores: dict[str, dict[str, float | None]] = {}
    for name, cfg in candidates.items():
        worst_v, worst_c, distance = 0.0, 0.0, 0.0
        for case in cases:
            v, c = replay_case(case, cfg, lag=lag, capacity=capacity, calendar=False).ratios()
            v, c = (v if v is not None else 0.0), (c if c is not None else 1.0)
            worst_v, worst_c = max(worst_v, v), max(worst_c, c)
            distance = max(distance, v / violation_bound, (c - 1.0) / (cost_bound - 1.0))
        scores[name] = {
            "worst_violation_ratio": round(worst_v, 4),
            "worst_replica_minutes_ratio": round(worst_c, 4),
            "target_distance": round(distance, 4),
        }
        if progress is not None:
            progress(name)
    chosen = min(scores, key=lambda n: (scores[n]["target_distance"], scores[n]["worst_replica_minutes_ratio"]))
    return chosen, candidates[chosen], Selection(chosen=chosen, cases=[c.name for c in cases], scores=scores)


def report_row(case: TraceCase, report: BacktestReport, label: str) -> dict[str, Any]:
    """One table row: both planners' figures and the ratios, with and without the calendar."""
    v, c = report.ratios()
    row: dict[str, Any] = {
        "trace": case.name,
        "sample": label,
        "synthetic_crowds": case.crowds if case.synthetic else None,
        "minutes": report.minutes,
        "capacity_per_replica": report.capacity_per_replica,
        "lag_minutes": report.lag_minutes,
        "reactive_violation_minutes": report.reactive.violation_minutes,
        "reactive_replica_minutes": report.reactive.replica_minutes,
        "predictive_violation_minutes": report.predictive.violation_minutes,
        "predictive_replica_minutes": report.predictive.replica_minutes,
        "violation_ratio": None if v is None else round(v, 4),
        "replica_minutes_ratio": None if c is None else round(c, 4),
        "meets_target": v is not None and c is not None and v <= TARGET_VIOLATION_RATIO
        and c <= TARGET_REPLICA_MINUTES_RATIO,
        "predictive_replay_seconds": round(report.predictive_seconds, 2),
    }
    if report.heuristic is not None:
        hv, hc = report.ratios(report.heuristic)
        row["heuristic_violation_minutes"] = report.heuristic.violation_minutes
        row["heuristic_replica_minutes"] = report.heuristic.replica_minutes
        row["heuristic_violation_ratio"] = None if hv is None else round(hv, 4)
        row["heuristic_replica_minutes_ratio"] = None if hc is None else round(hc, 4)
    if case.crowd_mask is not None:
        mask = case.crowd_mask
        cap = report.capacity_per_replica
        row["reactive_violation_minutes_in_crowds"] = int(((case.values > cap * report.reactive.ready) & mask).sum())
        row["predictive_violation_minutes_in_crowds"] = int(
            ((case.values > cap * report.predictive.ready) & mask).sum()
        )
    if report.with_calendar is not None:
        cv, cc = report.ratios(report.with_calendar)
        row["calendar_events"] = report.events
        row["calendar_violation_minutes"] = report.with_calendar.violation_minutes
        row["calendar_replica_minutes"] = report.with_calendar.replica_minutes
        row["calendar_violation_ratio"] = None if cv is None else round(cv, 4)
        row["calendar_replica_minutes_ratio"] = None if cc is None else round(cc, 4)
    return row


def run_protocol(
    cases: Sequence[TraceCase],
    *,
    lag: int = 10,
    select_on: Sequence[str] = (),
    config: PredictiveConfig | None = None,
    capacity: float | None = None,
    candidates: dict[str, PredictiveConfig] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Select (if ``select_on``) and report every case; returns the JSON-ready result with one row per case."""
    seeds = sorted({c.seed for c in cases if c.seed is not None})[:1]
    selection = None
    if select_on:
        chosen_cases = [c for c in cases if is_selection_case(c, select_on, seeds)]
        name, config, selection = select_config(
            chosen_cases, lag=lag, candidates=candidates, capacity=capacity, progress=progress
        )
        in_sample = {c.name for c in chosen_cases}
        chosen_label = f"selected: {name}"
    else:
        config = config or PredictiveConfig()
        in_sample = {
            c.name for c in cases if is_selection_case(c, DEFAULTS_CHOSEN_ON, DEFAULTS_CHOSEN_ON_SEEDS)
        }
        chosen_label = "default"
    rows = []
    for case in cases:
        report = replay_case(case, config, lag=lag, capacity=capacity, heuristic=True)
        rows.append(report_row(case, report, "in-sample" if case.name in in_sample else "out-of-sample"))
        if progress is not None:
            progress(case.name)
    out_rows = [r for r in rows if r["sample"] == "out-of-sample"]
    return {
        "lag_minutes": lag,
        "targets": {
            "violation_ratio_max": TARGET_VIOLATION_RATIO,
            "replica_minutes_ratio_max": TARGET_REPLICA_MINUTES_RATIO,
        },
        "configuration": chosen_label,
        "predictive_config": asdict(config),
        "selection": selection.to_dict() if selection else None,
        "rows": rows,
        "all_meet_target": all(r["meets_target"] for r in rows),
        "out_of_sample_meet_target": all(r["meets_target"] for r in out_rows) if out_rows else None,
    }


__all__ = [
    "CANDIDATES",
    "DEFAULTS_CHOSEN_ON",
    "Selection",
    "TARGET_REPLICA_MINUTES_RATIO",
    "TARGET_VIOLATION_RATIO",
    "TraceCase",
    "build_cases",
    "default_capacity",
    "is_selection_case",
    "replay_case",
    "report_row",
    "run_protocol",
    "select_config",
]
