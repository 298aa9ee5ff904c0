"""Recency-weighted quantile sketches and counters.

A sample observed at time ``t`` carries weight ``2 ** ((t - now) / half_life)``: exponential forgetting. Weights are
kept relative to a reference time, so adding samples is order-independent (an event that arrives late adds exactly
what it would have added on time) and merging two sketches is a plain sum. Values fall into fixed bins (hours, or
dimensionless ratios) and quantiles interpolate linearly inside a bin.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any


def _hour_edges() -> tuple[float, ...]:
    edges: list[float] = [0.0]
    edges += [float(h) for h in range(2, 49, 2)]  # 2 h bins for the first two days
    edges += [48.0 + 6.0 * i for i in range(1, 21)]  # 6 h bins to day 7
    edges += [168.0 + 12.0 * i for i in range(1, 47)]  # 12 h bins to day 30
    edges += [720.0 + 48.0 * i for i in range(1, 31)]  # 2 day bins to day 90
    edges += [2880.0, 5760.0]
    return tuple(edges)


def _ratio_edges() -> tuple[float, ...]:
    # Log-spaced from 0.05 to 20: a ratio of actual to predicted duration.
    n = 120
    lo, hi = math.log(0.05), math.log(20.0)
    return (0.0,) + tuple(math.exp(lo + (hi - lo) * i / n) for i in range(n + 1))


EDGES: dict[str, tuple[float, ...]] = {"hours": _hour_edges(), "ratio": _ratio_edges()}

# Rescale stored weights when the reference falls this many half-lives behind (keeps floats finite).
_RESCALE_AFTER = 40.0
# Decay factors asked for a time far before the newest sample are capped here: 2.0 ** 1024 raises OverflowError.
_MAX_EXPONENT = 1000.0


class DecayingHistogram:
    """Exponentially forgetting histogram with quantiles. ``half_life`` and times share one unit (hours here)."""

    __slots__ = ("kind", "edges", "half_life", "ref", "weights")

    def __init__(self, half_life: float, kind: str = "hours") -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.kind = kind
        self.edges = EDGES[kind]
        self.half_life = half_life
        self.ref: float | None = None
        self.weights = [0.0] * (len(self.edges) - 1)

    def _factor(self, t: float) -> float:
        if self.ref is None:
            self.ref = t
        exponent = (t - self.ref) / self.half_life
        if exponent > _RESCALE_AFTER:
            shrink = 2.0 ** (-exponent)
            self.weights = [w * shrink for w in self.weights]
            self.ref = t
            exponent = 0.0
        return 2.0 ** exponent

    def add(self, value: float, t: float, weight: float = 1.0) -> None:
        """Record ``value`` observed at time ``t``."""
        if not math.isfinite(value):
            raise ValueError("value must be finite")
        edges = self.edges
        v = min(max(value, edges[0]), edges[-1] - 1e-9)
        i = min(bisect_right(edges, v) - 1, len(self.weights) - 1)
        # A negative weight removes an earlier sample (same value and time); clamp float dust at zero.
        self.weights[i] = max(0.0, self.weights[i] + weight * self._factor(t))

    def weight(self, at: float) -> float:
        """Effective number of samples as of ``at`` (each decayed by its age)."""
        if self.ref is None:
            return 0.0
        return sum(self.weights) * 2.0 ** min((self.ref - at) / self.half_life, _MAX_EXPONENT)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (linear inside a bin); None when empty. Decay cancels out of quantiles."""
        total = sum(self.weights)
        if total <= 0:
            return None
        q = min(max(q, 0.0), 1.0)
        target = q * total
        acc = 0.0
        edges = self.edges
        for i, w in enumerate(self.weights):
            if w <= 0:
                continue
            if acc + w >= target:
                frac = (target - acc) / w
                return edges[i] + frac * (edges[i + 1] - edges[i])
            acc += w
        return edges[-1]

    def mean(self) -> float | None:
        total = sum(self.weights)
        if total <= 0:
            return None
        e = self.edges
        return sum(w * (e[i] + e[i + 1]) / 2 for i, w in enumerate(self.weights) if w) / total

    def merge(self, other: "DecayingHistogram") -> None:
        if other.kind != self.kind or other.half_life != self.half_life:
            raise ValueError("can only merge sketches of the same kind and half-life")
        if other.ref is None:
            return
        f = self._factor(other.ref)
        self.weights = [a + b * f for a, b in zip(self.weights, other.weights)]

    def to_dict(self) -> dict[str, Any]:
        # Sparse: most bins are empty for most keys.
        return {
            "k": self.kind,
            "h": self.half_life,
            "r": self.ref,
            "w": {str(i): w for i, w in enumerate(self.weights) if w},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecayingHistogram":
        h = cls(float(data["h"]), data.get("k", "hours"))
        h.ref = data.get("r")
        for i, w in data.get("w", {}).items():
            h.weights[int(i)] = float(w)
        return h


class DecayingCounter:
    """A vector of exponentially forgetting counts (e.g. [missed, total] or 24 hourly buckets)."""

    __slots__ = ("half_life", "ref", "values")

    def __init__(self, half_life: float, size: int = 1) -> None:
        self.half_life = half_life
        self.ref: float | None = None
        self.values = [0.0] * size

    def add(self, t: float, index: int = 0, amount: float = 1.0) -> None:
        if self.ref is None:
            self.ref = t
        exponent = (t - self.ref) / self.half_life
        if exponent > _RESCALE_AFTER:
            shrink = 2.0 ** (-exponent)
            self.values = [v * shrink for v in self.values]
            self.ref = t
            exponent = 0.0
        self.values[index] = max(0.0, self.values[index] + amount * 2.0**exponent)

    def value(self, at: float, index: int = 0) -> float:
        """The decayed count as of ``at``."""
        if self.ref is None:
            return 0.0
        return self.values[index] * 2.0 ** min((self.ref - at) / self.half_life, _MAX_EXPONENT)

    def rate_per_unit(self, at: float, index: int = 0) -> float:
        """Events per time unit: a decayed count over an exponential window has mass ``rate * half_life / ln 2``."""
        return self.value(at, index) * math.log(2.0) / self.half_life

    def ratio(self, num: int, den: int) -> float | None:
        d = self.values[den]
        return None if d <= 0 else self.values[num] / d

    def to_dict(self) -> dict[str, Any]:
        return {"h": self.half_life, "r": self.ref, "v": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecayingCounter":
        c = cls(float(data["h"]), len(data["v"]))
        c.ref = data.get("r")
        c.values = [float(v) for v in data["v"]]
        return c
