"""A global gradient-boosted forecast of protection-interval demand for the restock engine (``forecast_model="gbm"``).

One LightGBM model for all SKUs predicts the total demand of the next ``horizon`` days (lead time + review) from a
SKU's own recent daily demand, scaled by its 28-day mean: the 7, 14, 56, 91, 182 and 364-day means, the last seven
days, the share of zero days in the last 28, the log of the scale, and the origin's weekday and day of the month;
with ``yearly`` (the engine's default since 2026-12-04) also the same days a year earlier and the 28 days after them.
The target is the horizon total over the scale, weighted by the scale squared, so the loss is the squared error in
units (the fast SKUs, which hold most of the stock, weigh most). It is fitted once, on the history the engine is
given (no SKU identity is a feature, so SKUs first seen later are forecast the same way), and read by the engine as
a per-SKU factor on its own level x weekday forecast (:meth:`RestockEngine.observe`).
Read on its own it forecast 8-day demand better than the level model on the M5 selection years yet held more stock
in the lost-sales simulation (its forecast swings from day to day and stock is not sent back); blended half and half
with the level forecast, with the order-up-to level smoothed, it held less, and the engine ships with it on
(``docs/benchmarks/restock.md``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Sequence

import numpy as np

#: windows (days) of the mean features, and the longest history a feature looks at
WINDOWS = (7, 14, 28, 56, 91, 182, 364)
MEMORY = 364
LAGS = 7
#: most training rows (SKU x origin day); origins and then SKUs are thinned to stay under it
MAX_ROWS = 200_000
FEATURES = ("m7", "m14", "m56", "m91", "m182", "m364", "log_scale", "zero28", "weekday", "day_of_month",
            *(f"lag{k}" for k in range(1, LAGS + 1)))
#: with ``yearly``: the same ``horizon`` days a year (364 days, so the same weekdays) before the forecast days, and
#: the 28 days after those, each as a mean over the scale; missing (NaN) for a SKU without a full year of memory
YEARLY_FEATURES = ("year_ago", "year_ago_next28")


def features(recent: np.ndarray, observed: np.ndarray, weekday: int,
             day_of_month: int, lags: int = LAGS, yearly: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, len(FEATURES) - LAGS + lags [+ 2]) features and the (n,) scale for origins whose last ``recent.shape[1]``
    days are ``recent`` (oldest first, the origin day last); ``observed`` is how many of those days each SKU existed.
    ``lags``: how many of the last days are features of their own (the first ``lags`` lag features). ``yearly``:
    the forecast's horizon, to add :data:`YEARLY_FEATURES` (0: not)."""
    x = np.asarray(recent, dtype=float)
    n, w = x.shape
    tail = np.cumsum(x[:, ::-1], axis=1)  # tail[:, k-1] = sum of the last k days
    seen = np.maximum(np.asarray(observed, dtype=float), 1.0)

    def mean(k: int) -> np.ndarray:
        k = min(k, w)
        return tail[:, k - 1] / np.minimum(seen, k)

    m28 = mean(28)
    scale = m28 + 0.1
    cols = [mean(k) / scale for k in (7, 14, 56, 91, 182, 364)]
    cols.append(np.log(scale))
    cols.append((x[:, -min(28, w):] == 0).mean(axis=1))
    cols.append(np.full(n, float(weekday)))
    cols.append(np.full(n, float(day_of_month)))
    cols.extend(x[:, -k] / scale for k in range(1, lags + 1))
    if yearly:
        # the origin is day t; the forecast days t+1 .. t+h a year earlier are t+1-364 .. : the oldest memory days
        full = (w >= MEMORY) & (seen >= MEMORY)
        if w >= MEMORY:
            ago = x[:, -MEMORY:]
            cols.append(np.where(full, ago[:, :yearly].mean(axis=1) / scale, np.nan))
            cols.append(np.where(full, ago[:, yearly:yearly + 28].mean(axis=1) / scale, np.nan))
        else:
            cols.extend([np.full(n, np.nan)] * 2)
    return np.column_stack(cols), scale


class GlobalForecaster:
    """The fitted model: :meth:`predict` gives each SKU's expected demand over the next ``horizon`` days."""

    def __init__(self, model, horizon: int, lags: int = LAGS, yearly: bool = False) -> None:
        self.model = model
        self.horizon = horizon
        self.lags = lags
        self.yearly = bool(yearly)

    def to_text(self) -> str:
        """The model as JSON text (LightGBM's own model text inside; no pickle), for :meth:`from_text`."""
        import json

        booster = self.model.booster_ if hasattr(self.model, "booster_") else self.model
        return json.dumps({"horizon": self.horizon, "lags": self.lags, "yearly": self.yearly,
                           "booster": booster.model_to_string()})

    @classmethod
    def from_text(cls, text: str) -> "GlobalForecaster":
        """The model :meth:`to_text` wrote; it predicts the same numbers."""
        import json

        import lightgbm as lgb

        data = json.loads(text)
        return cls(lgb.Booster(model_str=data["booster"]), int(data["horizon"]), int(data["lags"]),
                   bool(data.get("yearly", False)))

    def predict(self, recent: np.ndarray, observed: np.ndarray, weekday: int, day: date | None) -> np.ndarray:
        if len(recent) == 0:
            return np.zeros(0)
        X, scale = features(recent, observed, weekday, day.day if day is not None else 0, self.lags,
                            self.horizon if self.yearly else 0)
        return np.maximum(self.model.predict(X, num_threads=1), 0.0) * scale


def fit_global(series: np.ndarray, weekdays: Sequence[int], horizon: int, *, first_day: date | None = None,
               min_days: int = 182, seed: int = 0, lags: int = LAGS, yearly: bool = False) -> GlobalForecaster | None:
    """Fit on a (SKUs x days) block of daily demand (oldest first); ``None`` when it has fewer than ``min_days``
    days or no demand. Origins are every day with ``horizon`` days after it and at least 28 before it. ``lags``
    (0..7): how many of the last days are features of their own. ``yearly``: add :data:`YEARLY_FEATURES`."""
    if not 0 <= lags <= LAGS:
        raise ValueError(f"lags must be in 0..{LAGS}, got {lags!r}")
    import lightgbm as lgb

    y = np.asarray(series, dtype=float)
    n, days = y.shape
    if days < max(min_days, 28 + horizon + 1) or n == 0 or not y.any():
        return None
    origins = np.arange(27, days - horizon)
    step = max(1, int(np.ceil(len(origins) * n / MAX_ROWS)))
    origins = origins[::step]
    rng = np.random.default_rng(seed)
    skus = np.arange(n)
    if len(origins) * n > MAX_ROWS:
        skus = np.sort(rng.choice(n, size=max(1, MAX_ROWS // len(origins)), replace=False))
    sub = y[skus]
    born = np.argmax(sub > 0, axis=1)  # first day with demand: a SKU "exists" from then on
    csum = np.concatenate([np.zeros((len(skus), 1)), np.cumsum(sub, axis=1)], axis=1)
    X, T, W = [], [], []
    for t in origins:
        lo = max(t + 1 - MEMORY, 0)
        observed = np.clip(t + 1 - np.maximum(born, lo), 0, None) + 0.0
        f, scale = features(sub[:, lo:t + 1], observed, int(weekdays[t]),
                            (first_day + timedelta(days=int(t))).day if first_day is not None else 0, lags,
                            horizon if yearly else 0)
        live = born <= t
        target = csum[:, t + 1 + horizon] - csum[:, t + 1]
        X.append(f[live])
        T.append(target[live] / scale[live])
        W.append(scale[live] ** 2)
    if not X or sum(len(x) for x in X) < 500:
        return None
    model = lgb.LGBMRegressor(n_estimators=200, learning_rate=0.06, num_leaves=31, min_child_samples=200,
                              subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                              deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
    model.fit(np.vstack(X), np.concatenate(T), sample_weight=np.concatenate(W))
    return GlobalForecaster(model, horizon, lags, yearly)


__all__ = ["FEATURES", "YEARLY_FEATURES", "GlobalForecaster", "features", "fit_global"]
