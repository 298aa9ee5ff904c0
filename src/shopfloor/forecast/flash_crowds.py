"""Synthetic flash crowds injected into a real per-minute request trace (seeded, documented, reproducible).

A capacity planner tuned on a few real traces learns their daily cycle; what it must also survive are surges
nobody told it about. This generator adds such surges to a real trace so that every planner is judged on the
same, known disturbances:

* **Shape.** A surge multiplies the trace's local level by ``m`` (drawn from ``multiplier``, default x3 to x10):
  it ramps linearly from 1 to ``m`` over ``ramp`` minutes (default 1-5), holds ``m`` for the rest of its
  ``duration`` (default 30-120 minutes in all), then decays back to 1 over ``ramp`` to ``3 x ramp`` minutes.
* **Traffic model.** The extra requests are Poisson with mean ``level x (profile - 1)``, where ``level`` is the
  trace's centred 31-minute moving average (at least ``min_level`` requests/minute, so that a surge in an empty
  night still brings visitors). The trace's own minute-to-minute noise is kept; the crowd adds its own.
* **Timing.** Two kinds, as real campaigns come: *irregular* surges at uniformly random minutes (``irregular_per_day``
  on average, a Poisson count), and *recurring* surges, ``recurring_slots`` clock times of day (each drawn once)
  at which a surge starts on each day with probability ``recurring_probability`` (a newsletter, a daily deal,
  a TV slot), with a start jitter of up to ``recurring_jitter_minutes`` and the slot's multiplier and duration
  varying by +-20 % from day to day. Surges may overlap; overlapping profiles take the larger multiplier.
* **Episodes** (off by default): a campaign that runs for a few consecutive days, ``episodes_per_week`` on average
  (a Poisson count). Each episode draws a clock time, a multiplier, a duration, a ramp and a length of
  ``episode_days`` days; on each of those days a surge starts at the clock time plus a jitter of up to
  ``episode_jitter_minutes``, its multiplier and duration varying by +-20 % from day to day (kind ``episode``).
  The first day of an episode is as unannounced as an irregular surge; the following days echo it at about the
  same clock time, as a multi-day promotion or a repeated mailing does.

Nothing here looks at a planner: the surges depend only on the trace's length, level, the spec and the seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MINUTES_PER_DAY = 1440


class FlashCrowdError(ValueError):
    """An invalid generator setting. ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FlashCrowdSpec:
    """What to inject (see the module docstring). Ranges are inclusive ``(low, high)``."""

    multiplier: tuple[float, float] = (3.0, 10.0)
    ramp_minutes: tuple[int, int] = (1, 5)
    duration_minutes: tuple[int, int] = (30, 120)
    irregular_per_day: float = 0.5
    recurring_slots: int = 1
    recurring_probability: float = 0.7
    recurring_jitter_minutes: int = 3
    min_level: float = 1.0
    episodes_per_week: float = 0.0
    episode_days: tuple[int, int] = (2, 4)
    episode_jitter_minutes: int = 10

    def validate(self) -> "FlashCrowdSpec":
        lo, hi = self.multiplier
        if not (1.0 < lo <= hi):
            raise FlashCrowdError("multiplier", f"need 1 < low <= high, got {self.multiplier}")
        for name in ("ramp_minutes", "duration_minutes"):
            a, b = getattr(self, name)
            if not (isinstance(a, int) and isinstance(b, int) and 1 <= a <= b):
                raise FlashCrowdError(name, f"need whole numbers 1 <= low <= high, got {getattr(self, name)}")
        if self.duration_minutes[0] < self.ramp_minutes[1]:
            raise FlashCrowdError("duration_minutes", "the shortest surge must outlast the longest ramp")
        if not (self.irregular_per_day >= 0):
            raise FlashCrowdError("irregular_per_day", f"must be >= 0, got {self.irregular_per_day}")
        if not (isinstance(self.recurring_slots, int) and self.recurring_slots >= 0):
            raise FlashCrowdError("recurring_slots", f"must be a whole number >= 0, got {self.recurring_slots}")
        if not 0 <= self.recurring_probability <= 1:
            raise FlashCrowdError("recurring_probability", f"must be in [0, 1], got {self.recurring_probability}")
        if not (isinstance(self.recurring_jitter_minutes, int) and self.recurring_jitter_minutes >= 0):
            raise FlashCrowdError("recurring_jitter_minutes", "must be a whole number >= 0")
        if not (self.episodes_per_week >= 0):
            raise FlashCrowdError("episodes_per_week", f"must be >= 0, got {self.episodes_per_week}")
        a, b = self.episode_days
        if not (isinstance(a, int) and isinstance(b, int) and 1 <= a <= b):
            raise FlashCrowdError("episode_days", f"need whole numbers 1 <= low <= high, got {self.episode_days}")
        if not (isinstance(self.episode_jitter_minutes, int) and self.episode_jitter_minutes >= 0):
            raise FlashCrowdError("episode_jitter_minutes", "must be a whole number >= 0")
        if not self.min_level >= 0:
            raise FlashCrowdError("min_level", f"must be >= 0, got {self.min_level}")
        return self


@dataclass(frozen=True)
class FlashCrowd:
    """One injected surge: minute index of its start, its multiplier, ramp, total length and kind."""

    start: int
    multiplier: float
    ramp: int
    duration: int
    decay: int
    kind: str  # "irregular" | "recurring" | "episode"

    @property
    def end(self) -> int:
        """First minute after the surge (decay included)."""
        return self.start + self.duration + self.decay

    def profile(self) -> np.ndarray:
        """The multiplier per minute from ``start`` to ``end``: ramp up, hold, decay."""
        up = 1.0 + (self.multiplier - 1.0) * np.arange(1, self.ramp + 1) / self.ramp
        hold = np.full(self.duration - self.ramp, self.multiplier)
        down = 1.0 + (self.multiplier - 1.0) * np.arange(self.decay - 1, -1, -1) / self.decay
        return np.concatenate([up, hold, down])

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), end=self.end)


@dataclass
class InjectedTrace:
    """The trace with crowds added, the crowds, and a mask of the minutes they touch."""

    values: np.ndarray
    crowds: list[FlashCrowd]
    mask: np.ndarray
    seed: int
    spec: FlashCrowdSpec = field(default_factory=FlashCrowdSpec)

    def summary(self) -> dict[str, Any]:
        kinds = [c.kind for c in self.crowds]
        return {
            "seed": self.seed,
            "crowds": len(self.crowds),
            "irregular": kinds.count("irregular"),
            "recurring": kinds.count("recurring"),
            "episode": kinds.count("episode"),
            "minutes_in_crowds": int(self.mask.sum()),
            "spec": asdict(self.spec),
        }


def plan_crowds(n_minutes: int, spec: FlashCrowdSpec, rng: np.random.Generator) -> list[FlashCrowd]:
    """Draw the surges for a trace of ``n_minutes`` (timing and shape only; no traffic yet)."""
    spec.validate()
    crowds: list[FlashCrowd] = []

    def shape(kind: str, start: int, m: float | None = None, dur: int | None = None, ramp: int | None = None):
        ramp = ramp if ramp is not None else int(rng.integers(spec.ramp_minutes[0], spec.ramp_minutes[1] + 1))
        m = m if m is not None else float(rng.uniform(*spec.multiplier))
        dur = dur if dur is not None else int(rng.integers(spec.duration_minutes[0], spec.duration_minutes[1] + 1))
        dur = max(dur, ramp + 1)
        decay = int(rng.integers(ramp, 3 * ramp + 1))
        return FlashCrowd(start=start, multiplier=round(m, 3), ramp=ramp, duration=dur, decay=decay, kind=kind)

    days = n_minutes / MINUTES_PER_DAY
    for _ in range(int(rng.poisson(spec.irregular_per_day * days))):
        crowds.append(shape("irregular", int(rng.integers(0, max(n_minutes - 1, 1)))))
    for _ in range(spec.recurring_slots):
        clock = int(rng.integers(0, MINUTES_PER_DAY))
        m0 = float(rng.uniform(*spec.multiplier))
        d0 = int(rng.integers(spec.duration_minutes[0], spec.duration_minutes[1] + 1))
        r0 = int(rng.integers(spec.ramp_minutes[0], spec.ramp_minutes[1] + 1))
        lo_m, hi_m = spec.multiplier
        for day in range(int(np.ceil(days))):
            if rng.random() >= spec.recurring_probability:
                continue
            jitter = int(rng.integers(-spec.recurring_jitter_minutes, spec.recurring_jitter_minutes + 1))
            start = day * MINUTES_PER_DAY + clock + jitter
            if not 0 <= start < n_minutes:
                continue
            m = float(np.clip(m0 * rng.uniform(0.8, 1.2), lo_m, hi_m))
            dur = int(np.clip(round(d0 * rng.uniform(0.8, 1.2)), *spec.duration_minutes))
            crowds.append(shape("recurring", start, m=m, dur=dur, ramp=r0))
    if spec.episodes_per_week > 0:
        # Drawn after the other kinds (and only when asked for), so specs without episodes keep their crowds.
        lo_m, hi_m = spec.multiplier
        jit = spec.episode_jitter_minutes
        for _ in range(int(rng.poisson(spec.episodes_per_week * days / 7.0))):
            first = int(rng.integers(0, max(int(np.ceil(days)), 1)))
            clock = int(rng.integers(0, MINUTES_PER_DAY))
            length = int(rng.integers(spec.episode_days[0], spec.episode_days[1] + 1))
            m0 = float(rng.uniform(*spec.multiplier))
            d0 = int(rng.integers(spec.duration_minutes[0], spec.duration_minutes[1] + 1))
            r0 = int(rng.integers(spec.ramp_minutes[0], spec.ramp_minutes[1] + 1))
            for day in range(first, first + length):
                start = day * MINUTES_PER_DAY + clock + int(rng.integers(-jit, jit + 1))
                if not 0 <= start < n_minutes:
                    continue
                m = float(np.clip(m0 * rng.uniform(0.8, 1.2), lo_m, hi_m))
                dur = int(np.clip(round(d0 * rng.uniform(0.8, 1.2)), *spec.duration_minutes))
                crowds.append(shape("episode", start, m=m, dur=dur, ramp=r0))
    crowds.sort(key=lambda c: c.start)
    return crowds


def inject_flash_crowds(
    values: np.ndarray | list[float], *, seed: int, spec: FlashCrowdSpec | None = None
) -> InjectedTrace:
    """Add seeded synthetic flash crowds to a per-minute trace (see the module docstring for the model)."""
    spec = (spec or FlashCrowdSpec()).validate()
    base = np.asarray(values, dtype=float)
    if base.ndim != 1 or len(base) == 0:
        raise FlashCrowdError("values", "must be a non-empty one-dimensional series")
    if (base < 0).any() or not np.isfinite(base).all():
        raise FlashCrowdError("values", "must be finite and >= 0")
    rng = np.random.default_rng(seed)
    n = len(base)
    crowds = plan_crowds(n, spec, rng)
    kernel = np.ones(31) / 31.0
    padded = np.concatenate([np.full(15, base[:15].mean()), base, np.full(15, base[-15:].mean())])
    level = np.maximum(np.convolve(padded, kernel, mode="valid")[:n], spec.min_level)
    factor = np.ones(n)
    mask = np.zeros(n, dtype=bool)
    for crowd in crowds:
        prof = crowd.profile()
        lo, hi = crowd.start, min(crowd.end, n)
        factor[lo:hi] = np.maximum(factor[lo:hi], prof[: hi - lo])
        mask[lo:hi] = True
    extra = rng.poisson(level * (factor - 1.0))
    return InjectedTrace(values=base + extra, crowds=crowds, mask=mask, seed=seed, spec=spec)


def stretched_daily_cycle(
    values: np.ndarray | list[float],
    *,
    days: int,
    seed: int,
    quiet_power: float = 2.0,
    peak_level: float | None = None,
    day_to_day: float = 0.1,
    weekend: tuple[int, ...] = (5, 6),
) -> np.ndarray:
    """A longer per-minute trace with the daily and weekly cycle of ``values`` (which starts at a local midnight).

    The mean traffic of each clock minute is taken separately for weekdays and weekend days of ``values`` (days
    whose position modulo 7 is in ``weekend``, in the input and in the output alike),
    smoothed over 31 minutes and normalised to a peak of 1, then raised to ``quiet_power`` (> 1 deepens the quiet
    hours: a night at 30 % of the peak becomes 9 % at power 2). ``days`` days of it are laid end to end, each
    scaled by a lognormal day-to-day factor (sigma ``day_to_day``) and by ``peak_level`` (default: the peak of the
    smoothed input profile), and drawn as Poisson counts. Seeded; nothing here looks at a planner.
    """
    base = np.asarray(values, dtype=float)
    if base.ndim != 1 or len(base) < 7 * MINUTES_PER_DAY:
        raise FlashCrowdError("values", "need at least one week of per-minute values")
    if days < 1:
        raise FlashCrowdError("days", f"must be at least 1, got {days}")
    if not quiet_power > 0:
        raise FlashCrowdError("quiet_power", f"must be > 0, got {quiet_power}")
    rng = np.random.default_rng(seed)
    whole = len(base) // MINUTES_PER_DAY
    grid = base[: whole * MINUTES_PER_DAY].reshape(whole, MINUTES_PER_DAY)
    weekend_of = np.isin(np.arange(max(whole, days)) % 7, weekend)
    is_weekend = weekend_of[:whole]
    kernel = np.ones(31) / 31.0
    profiles = []
    for rows in (grid[~is_weekend], grid[is_weekend] if is_weekend.any() else grid[~is_weekend]):
        mean = rows.mean(axis=0)
        padded = np.concatenate([mean[-15:], mean, mean[:15]])
        profiles.append(np.convolve(padded, kernel, mode="valid"))
    top = max(float(p.max()) for p in profiles)
    if top <= 0:
        raise FlashCrowdError("values", "have no traffic")
    level = peak_level if peak_level is not None else top
    shapes = [(p / top) ** quiet_power * level for p in profiles]
    out = np.concatenate(
        [shapes[1 if weekend_of[d] else 0] * float(np.exp(rng.normal(0.0, day_to_day))) for d in range(days)]
    )
    return rng.poisson(out).astype(float)


__all__ = [
    "FlashCrowd",
    "FlashCrowdError",
    "FlashCrowdSpec",
    "InjectedTrace",
    "inject_flash_crowds",
    "plan_crowds",
    "stretched_daily_cycle",
]
