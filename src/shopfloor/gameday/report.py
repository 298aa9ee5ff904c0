"""A game day's report: what each shopper saw, outcomes and latency per phase and per second, and the PNG chart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..domain.stats import percentile

@dataclass
class Attempt:
    """One purchase as the shopper saw it: first try to final answer (retries of the same key included)."""

    started_s: float
    latency_ms: float
    status: int | None  # None: never answered before the load phase ended
    order_id: str | None = None
    flash: bool = False
    tries: int = 1


class ChecksVerdict:
    """The verdict every scenario's result gives the same way: it passed when it ran its checks and each counted 0.
    ``to_dict`` is the JSON the CLI prints, named by the scenario."""

    scenario: ClassVar[str]
    checks: dict[str, int]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(v == 0 for v in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, **asdict(self), "passed": self.passed}


@dataclass
class GameDayResult(ChecksVerdict):
    scenario: ClassVar[str] = "checkout"

    database: str
    seconds: float
    shoppers: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)
    #: Per second of the load phase: answers by kind and the p99 latency of the purchases started that second.
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: With a slow webhook subscriber: what the fast and the slow subscriber received (see gameday.subscribers).
    subscribers: dict[str, Any] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 1)


def summarize_phases(attempts: list[Attempt], boundaries: list[tuple[float, str]], end_s: float) -> list[dict]:
    """Outcome counts and latency per phase; phase k runs from boundary k to boundary k+1 (by start time)."""
    edges = [(0.0, "steady state")] + [(t, label) for t, label in boundaries]
    out = []
    for k, (start, label) in enumerate(edges):
        stop = edges[k + 1][0] if k + 1 < len(edges) else end_s + 1e9
        mine = [a for a in attempts if start <= a.started_s < stop]
        answered = [a.latency_ms for a in mine if a.status is not None]
        by_status: dict[str, int] = {}
        for a in mine:
            kind = str(a.status) if a.status is not None else "unanswered"
            by_status[kind] = by_status.get(kind, 0) + 1
        out.append({"from_s": round(start, 1), "phase": label, "checkouts": len(mine), "statuses": by_status,
                    "p50_ms": _percentile(answered, 0.50), "p99_ms": _percentile(answered, 0.99),
                    "retried": sum(1 for a in mine if a.tries > 1)})
    return out


def timeline(attempts: list[Attempt], end_s: float) -> list[dict[str, Any]]:
    """Purchases started in each second: accepted, refused (4xx: sold out, declined), unanswered, and latency."""
    out = []
    for sec in range(int(end_s) + 1):
        mine = [a for a in attempts if sec <= a.started_s < sec + 1]
        answered = [a.latency_ms for a in mine if a.status is not None]
        out.append({"second": sec, "accepted": sum(1 for a in mine if a.status == 201),
                    "refused": sum(1 for a in mine if a.status is not None and a.status != 201),
                    "unanswered": sum(1 for a in mine if a.status is None),
                    "p50_ms": _percentile(answered, 0.50), "p99_ms": _percentile(answered, 0.99)})
    return out


def plot_gameday(result: GameDayResult, path: str | Path) -> Path:
    """PNG: accepted checkouts per second and p99 latency over the load phase, each fault marked where it hit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    secs = [p["second"] for p in result.timeline]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, constrained_layout=True)
    top.bar(secs, [p["accepted"] for p in result.timeline], width=1.0, align="edge", color="#2b8a3e",
            label="accepted (201)")
    top.bar(secs, [p["refused"] for p in result.timeline], width=1.0, align="edge", color="#f08c00",
            bottom=[p["accepted"] for p in result.timeline], label="refused (sold out, declined)")
    top.set_ylabel("purchases started / s")
    mid = [x + 0.5 for x in secs]
    bottom.plot(mid, [p["p99_ms"] if p["p99_ms"] is not None else float("nan") for p in result.timeline],
                color="#c92a2a", label="p99")
    bottom.plot(mid, [p["p50_ms"] if p["p50_ms"] is not None else float("nan") for p in result.timeline],
                color="#1864ab", label="p50")
    bottom.set_yscale("log")
    bottom.set_ylabel("first try to answer, ms")
    bottom.set_xlabel("seconds into the game day")
    for ax in (top, bottom):
        for f in result.faults:
            ax.axvline(f["at_s"], color="#495057", linestyle="--", linewidth=0.8)
    for f in result.faults:
        top.annotate(f["label"], (f["at_s"], 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                     va="top", ha="right", color="#495057")
    top.legend(loc="lower left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    verdict = "passed" if result.passed else "FAILED"
    top.set_title(f"game day ({result.database}, {result.shoppers} shoppers): {verdict}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
