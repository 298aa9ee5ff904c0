"""The funnel's vocabulary, shared by the tower's modules: stage names, the minute a timestamp falls in, the
checkout success rate, and the latency buckets per-minute percentiles are read from."""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Iterable, Sequence

STOREFRONT_STAGES = ("page_view", "product_view", "add_to_cart", "checkout_started")
# Server-side stages the app records through FunnelRecorder (names shared with the dashboard JSON).
SERVER_STAGES = ("promise_lookup", "checkout_attempt", "checkout_succeeded", "checkout_refused", "reservation_ok",
                 "payment_ok", "order_confirmed", "warehouse_handoff", "carrier_handoff", "delivered")


def checkout_success_rate(attempts: float, succeeded: float, refused: float) -> float | None:
    """Succeeded over the attempts that could succeed: a sold-out refusal (409 ``out_of_stock``, stage
    ``checkout_refused``) is the store answering correctly, not a failed checkout. None without such attempts."""
    could = attempts - refused
    return succeeded / could if could > 0 else None


def minute_of(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


#: Upper bounds (ms, inclusive) of the latency buckets each (minute, stage) rollup keeps, as a Prometheus histogram
#: does; one more bucket holds everything slower. Sums of buckets over minutes give the window's percentiles.
LATENCY_BOUNDS_MS: tuple[int, ...] = (5, 10, 25, 50, 75, 100, 150, 250, 400, 600, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def latency_bucket(latency_ms: float) -> int:
    """Index of the bucket ``latency_ms`` falls in (the last one: slower than every bound)."""
    return bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def sum_latency_buckets(histograms: Iterable[Sequence[int] | None]) -> list[int]:
    """Bucket counts summed over several histograms (minutes, processes): a longer window's histogram. An empty
    or missing histogram (a stage with no latency yet) adds nothing."""
    total = [0] * LATENCY_BUCKETS
    for counts in histograms:
        if counts:
            total = [a + b for a, b in zip(total, counts)]
    return total


def latency_quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q < 1) of latencies counted in :data:`LATENCY_BOUNDS_MS` buckets, interpolated
    linearly inside its bucket (the first starts at 0 ms); a quantile in the open last bucket reads as the last bound
    (a floor: "at least"). None when nothing was counted."""
    if not 0 < q < 1:
        raise ValueError(f"q must be between 0 and 1, got {q!r}")
    if len(counts) != LATENCY_BUCKETS:
        raise ValueError(f"expected {LATENCY_BUCKETS} bucket counts, got {len(counts)}")
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i == len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            lo = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
            return lo + (LATENCY_BOUNDS_MS[i] - lo) * (rank - seen) / c
        seen += c
    return float(LATENCY_BOUNDS_MS[-1])  # pragma: no cover - rank <= total always lands above
