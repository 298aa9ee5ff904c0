"""The one percentile definition used by every report, the dashboard and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentiles(values: Iterable[float], qs: Sequence[float]) -> list[float | None]:
    """The ``qs``-quantiles (each ``0 <= q <= 1``) of ``values``, sorting them once.

    Linear interpolation between the two nearest ranks (numpy's default method, R's type 7): ``q = 0.5`` is the
    median, ``q = 0`` the minimum, ``q = 1`` the maximum. ``None`` for each q when there are no values."""
    xs = sorted(values)
    out: list[float | None] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1 (got {q!r})")
        if not xs:
            out.append(None)
            continue
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        t = pos - lo
        a, b = xs[lo], xs[hi]
        # The same two-sided interpolation as numpy, so figures agree with it to the last bit.
        out.append(float(b - (b - a) * (1 - t)) if t >= 0.5 else float(a + (b - a) * t))
    return out


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-quantile of ``values`` (see :func:`percentiles`); ``None`` when there are no values."""
    return percentiles(values, (q,))[0]


__all__ = ["percentile", "percentiles"]
