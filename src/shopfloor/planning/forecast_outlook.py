"""Restock demand means from :mod:`shopfloor.forecast`, re-forecast at a cadence and updated daily.

Refitting the global forecast model every day is too expensive for a day-by-day backtest (and pointless for a
daily plan), so :class:`PeriodicForecastModel` calls the forecast package every ``cadence`` days with a horizon
of ``protection + cadence - 1`` days and reads the right slice of that forecast on the days in between. Its
daily means are a blend: ``weight`` x the forecast package's mean + ``(1 - weight)`` x the daily-updated
SES x weekday model of :mod:`shopfloor.planning.demand_model`. The blend is what the backtest picked
(docs/benchmarks/restock.md): the weekly forecast alone goes stale within the week (its 8-day error grows from
6 % below SES on the origin day to 6 % above it six days later), SES alone misses what the global model knows.

No look-ahead by construction: the model keeps its *own* copy of the demand it was shown through
:meth:`observe` and forecasts from that copy only. The forecaster is a plain function, so tests can inject a
fake and a backtest can share one :class:`ForecastCache` between runs (keyed by a hash of the exact history
the forecast saw, so a cache can never hand out a forecast made from different data).
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .demand_model import DemandModelConfig, RollingDemandModel

#: ``forecaster(ids, last_day, history, horizon) -> means``: history is series x days ending ``last_day``
#: (inclusive); the result is series x ``horizon`` expected demand for the days after ``last_day``.
Forecaster = Callable[[Sequence[str], date, np.ndarray, int], np.ndarray]

#: Weight of the forecast package's mean in the blend (the rest: daily SES x weekday). Picked by the M5 restock
#: backtest on both windows: with the session-3 forecast default, 0.7 held less stock than 0.5 at equal fill at 5 of
#: the 6 (window, target) points and tied the sixth (docs/benchmarks/restock.md).
DEFAULT_FORECAST_WEIGHT = 0.7


def forecast_package_means(
    ids: Sequence[str], last_day: date, history: np.ndarray, horizon: int, *, model: str = "auto",
) -> np.ndarray:
    """Per-day mean forecasts (series x ``horizon``) from :func:`shopfloor.forecast.forecast_distribution`."""
    import pandas as pd

    from ..forecast import forecast_distribution

    hist = np.asarray(history, dtype=float)
    n, days = hist.shape
    dates = pd.date_range(end=pd.Timestamp(last_day), periods=days, freq="D")
    frame = pd.DataFrame({
        "unique_id": np.repeat(np.asarray(ids, dtype=str), days),
        "ds": np.tile(dates.to_numpy(), n),
        "y": hist.ravel(),
    })
    dist = forecast_distribution(frame, int(horizon), model=model)
    wide = dist.frame.pivot(index="unique_id", columns="ds", values="mean")
    return wide.reindex(index=[str(i) for i in ids]).to_numpy(dtype=float)[:, :horizon]


class ForecastCache:
    """Memoises a :data:`Forecaster` on (ids, last day, exact history bytes, horizon).

    With ``directory`` the forecasts are also kept as ``.npy`` files there, so a re-run of a backtest skips the
    model fits; ``tag`` (e.g. the model spec) is part of the key, so different models never share an entry.
    """

    def __init__(self, forecaster: Forecaster, directory: str | Path | None = None, tag: str = "",
                 max_entries: int | None = None) -> None:
        self.forecaster = forecaster
        self.directory = Path(directory) if directory is not None else None
        self.tag = tag
        self.max_entries = max_entries
        self._store: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, ids: Sequence[str], last_day: date, history: np.ndarray, horizon: int) -> np.ndarray:
        h = hashlib.sha1(self.tag.encode())
        h.update("\x1f".join(map(str, ids)).encode())
        h.update(f"{last_day.isoformat()}|{horizon}|{history.shape}".encode())
        h.update(np.ascontiguousarray(history, dtype=np.float64).tobytes())
        key = h.hexdigest()
        with self._lock:
            if key in self._store:
                return self._store[key]
        path = self.directory / f"{key}.npy" if self.directory is not None else None
        if path is not None and path.is_file():
            out = np.load(path)
        else:
            self.calls += 1
            out = np.asarray(self.forecaster(ids, last_day, history, horizon), dtype=float)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, out)
        with self._lock:
            self._store[key] = out
            while self.max_entries is not None and len(self._store) > self.max_entries:
                del self._store[next(iter(self._store))]  # oldest first
        return out


class PeriodicForecastModel:
    """Daily demand means: the forecast package re-run every ``cadence`` days, blended with daily-updated SES.

    Drop-in for :class:`~shopfloor.planning.demand_model.RollingDemandModel` where the restock policy is
    concerned (:meth:`observe`, :meth:`daily_means`, :meth:`dispersion`). ``first_day`` is the date of the
    first observed day; forecasting starts once ``forecast_from`` days have been observed (earlier days only
    feed the history) and re-runs every ``cadence`` days after that, each time ``horizon`` days ahead (at least
    ``protection_days + cadence - 1``, so every day until the next forecast has its protection window covered).
    Before the first forecast, and for any day the last forecast does not cover, the means are the SES model's
    alone. A series with no demand at all in the history handed to the forecaster gets a zero forecast (a global
    model would lend it the panel's level).
    """

    def __init__(
        self,
        ids: Sequence[str],
        first_day: date,
        protection_days: int,
        forecaster: Forecaster,
        *,
        cadence: int = 7,
        weight: float = DEFAULT_FORECAST_WEIGHT,
        forecast_from: int = 0,
        history_days: int = 800,
        horizon: int | None = None,
        config: DemandModelConfig | None = None,
    ) -> None:
        if cadence < 1 or protection_days < 1 or history_days < 28:
            raise ValueError("cadence and protection_days must be >= 1, history_days >= 28")
        if not 0 <= weight <= 1:
            raise ValueError(f"weight must be in [0, 1], got {weight!r}")
        self.ids = [str(i) for i in ids]
        self.n = len(self.ids)
        self.first_day = first_day
        self.protection_days = protection_days
        self.forecaster = forecaster
        self.cadence = cadence
        self.weight = weight
        self.forecast_from = forecast_from
        self.history_days = history_days
        self.horizon = max(horizon or 0, protection_days + cadence - 1)
        self.ses = RollingDemandModel(self.n, protection_days, config)
        self._cols: deque[np.ndarray] = deque(maxlen=history_days)
        self._forecast: np.ndarray | None = None
        self._today = -1  # index of the last observed day (counted from first_day)
        self._origin = -1  # value of _today at the latest forecast
        self.forecasts_made = 0

    @property
    def days_seen(self) -> int:
        return self._today + 1

    def observe(self, demand: np.ndarray, weekday: int) -> None:
        """Feed the demand of the day that just ended (a copy is kept; nothing else ever reaches the model)."""
        d = np.array(demand, dtype=float)
        self.ses.observe(d, weekday)
        self._cols.append(d)
        self._today += 1
        today = self._today
        if today + 1 >= self.forecast_from and (today + 1 - self.forecast_from) % self.cadence == 0:
            history = np.stack(self._cols, axis=1)
            last_day = self.first_day + timedelta(days=today)
            fc = np.maximum(np.nan_to_num(self.forecaster(self.ids, last_day, history, self.horizon), nan=0.0), 0.0)
            # a global model lends every series some of the panel's level; one that never sold gets none
            fc[history.sum(axis=1) <= 0] = 0.0
            self._forecast = fc
            self._origin = today
            self.forecasts_made += 1

    def daily_means(self, days: int) -> np.ndarray:
        """(n_series, days) expected demand for each of the next ``days`` days (tomorrow first)."""
        ses = self.ses.daily_means(days)
        if self._forecast is None or self.weight == 0:
            return ses
        offset = self._today - self._origin
        fc = self._forecast[:, offset : offset + days]
        if fc.shape[1] < days:  # the forecast ends before the window does: SES fills the tail
            fc = np.concatenate([fc, ses[:, fc.shape[1]:]], axis=1)
        return self.weight * fc + (1 - self.weight) * ses

    def dispersion(self) -> np.ndarray:
        """The SES model's NB size (used only by the old ``spread="nb_shrunk"`` option)."""
        return self.ses.dispersion()
