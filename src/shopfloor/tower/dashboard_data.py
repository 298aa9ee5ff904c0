"""JSON shapes for the dashboard panels the tower owns (funnel, alerts, action log, suppressions).

Each function takes the repository and a time, and returns plain JSON-ready data, so a route or a test can use it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..store.tower import TowerRepository
from .funnel import SERVER_STAGES, STOREFRONT_STAGES, latency_quantile, minute_of, sum_latency_buckets

FUNNEL_ORDER = ("page_view", "product_view", "add_to_cart", "checkout_started", "checkout_attempt",
                "checkout_succeeded", "order_confirmed")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def funnel_series(repo: TowerRepository, now: datetime, minutes: int = 60,
                  stages: list[str] | None = None) -> dict[str, Any]:
    """Per-minute counts, mean and 95th-percentile latency for each stage over the last ``minutes`` (gaps filled
    with 0). A stage with latencies also gets ``latency_buckets``: the window's latency histogram, summed over its
    minutes (bounds in ``tower.funnel.LATENCY_BOUNDS_MS``), for window percentiles."""
    until = minute_of(now) + timedelta(minutes=1)
    since = until - timedelta(minutes=minutes)
    wanted = stages or list(STOREFRONT_STAGES + SERVER_STAGES)
    rows = repo.funnel_series(since, until, wanted)
    axis = [since + timedelta(minutes=i) for i in range(minutes)]
    index = {m: i for i, m in enumerate(axis)}
    series: dict[str, dict[str, list]] = {}

    def stage_series(stage: str) -> dict[str, list]:
        return series.setdefault(stage, {"count": [0] * minutes, "latency_ms_mean": [None] * minutes,
                                         "latency_ms_p95": [None] * minutes})

    for r in rows:
        s = stage_series(r["stage"])
        i = index.get(r["minute"])
        if i is not None:
            s["count"][i] = r["count"]
            s["latency_ms_mean"][i] = round(r["latency_ms_mean"], 2) if r["latency_ms_mean"] is not None else None
    for (minute, stage), counts in repo.funnel_latency(since, until, wanted).items():
        i = index.get(minute)
        if i is None:
            continue
        s = stage_series(stage)
        p95 = latency_quantile(counts, 0.95)
        s["latency_ms_p95"][i] = round(p95, 2) if p95 is not None else None
        s["latency_buckets"] = sum_latency_buckets([s.get("latency_buckets"), counts])
    return {"minutes": [m.isoformat() for m in axis], "series": series}


def funnel_conversion(repo: TowerRepository, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Totals per funnel step and the step-to-step and overall conversion over the last ``minutes``."""
    until = minute_of(now) + timedelta(minutes=1)
    totals = repo.funnel_totals(until - timedelta(minutes=minutes), until)
    steps = []
    first = totals.get(FUNNEL_ORDER[0], 0)
    prev = None
    for stage in FUNNEL_ORDER:
        n = totals.get(stage, 0)
        steps.append({"stage": stage, "count": n,
                      "from_previous": round(n / prev, 4) if prev else None,
                      "from_first": round(n / first, 4) if first else None})
        prev = n
    return {"window_minutes": minutes, "steps": steps}


def recent_alerts(repo: TowerRepository, now: datetime, hours: float = 24, limit: int = 100) -> list[dict]:
    return [{k: _iso(v) for k, v in a.items()} for a in repo.list_alerts(since=now - timedelta(hours=hours),
                                                                          limit=limit)]


def recent_actions(repo: TowerRepository, limit: int = 100, rule: str | None = None) -> list[dict]:
    return [{k: _iso(v) for k, v in a.items()} for a in repo.list_actions(limit=limit, rule=rule)]
