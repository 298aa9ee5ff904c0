"""Accuracy metrics for daily demand forecasts (M5 conventions).

* RMSSE per series: ``sqrt(mean((y - mean)^2) / mean(diff(y_train)^2))``; the in-sample scale is taken from the
  series' first non-zero sale onwards, as in M5. Series whose scale is zero (never changed) are left out.
* Dollar-weighted RMSSE: series weighted by ``price x units`` over the last 28 days of history (needs ``price``;
  NaN price = not on sale = no dollars).
* Scaled pinball loss (SPL): mean pinball loss over the horizon and the nine quantiles, divided by
  ``mean(|diff(y_train)|)``.
* Coverage: share of actuals inside ``[q_0.25, q_0.75]`` (50 %) and ``[q_0.025, q_0.975]`` (95 %), bounds inclusive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .frames import ID, QUANTILE_COLUMNS, QUANTILES, TARGET, TIME


def series_scales(train: pd.DataFrame) -> pd.DataFrame:
    """Per series ``rmsse_scale`` (mean squared first difference) and ``spl_scale`` (mean absolute difference)."""
    rows = {}
    for uid, y in train.sort_values([ID, TIME]).groupby(ID, sort=True)[TARGET]:
        v = y.to_numpy(dtype="float64")
        nz = np.flatnonzero(v != 0)
        v = v[nz[0]:] if nz.size else v
        d = np.diff(v)
        rows[uid] = (float(np.mean(d**2)) if d.size else np.nan, float(np.mean(np.abs(d))) if d.size else np.nan)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["rmsse_scale", "spl_scale"])
    out.index.name = ID
    return out.replace(0.0, np.nan)


def dollar_weights(train: pd.DataFrame, days: int = 28) -> pd.Series | None:
    """Weights ``sum(price * y)`` over each series' last ``days`` days, normalised to sum 1 (None without price)."""
    if "price" not in train.columns:
        return None
    tail = train.sort_values([ID, TIME]).groupby(ID, sort=True).tail(days)
    dollars = (tail["price"].fillna(0.0).astype("float64") * tail[TARGET].astype("float64")).groupby(tail[ID]).sum()
    total = dollars.sum()
    if total <= 0:
        return None
    return (dollars / total).rename("weight")


def pinball(y: np.ndarray, q_pred: np.ndarray, quantiles=QUANTILES) -> np.ndarray:
    """Pinball loss per row and quantile; ``q_pred`` has one column per quantile."""
    qs = np.asarray(quantiles, dtype="float64")[None, :]
    diff = y[:, None] - q_pred
    return np.maximum(qs * diff, (qs - 1.0) * diff)


def per_series_scores(forecast: pd.DataFrame, actual: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """One row per series: ``rmsse, spl, cov50, cov95`` (coverage as a share of days), plus ``weight``."""
    merged = forecast.merge(actual[[ID, TIME, TARGET]], on=[ID, TIME], how="inner")
    if merged.empty:
        raise ValueError("forecast and actuals share no (unique_id, ds) rows")
    y = merged[TARGET].to_numpy(dtype="float64")
    merged["sq"] = (y - merged["mean"].to_numpy(dtype="float64")) ** 2
    has_q = all(c in merged.columns for c in QUANTILE_COLUMNS)
    if has_q:
        qp = merged[list(QUANTILE_COLUMNS)].to_numpy(dtype="float64")
        merged["pl"] = pinball(y, qp).mean(axis=1)
        merged["in50"] = (y >= merged["q_0.25"]) & (y <= merged["q_0.75"])
        merged["in95"] = (y >= merged["q_0.025"]) & (y <= merged["q_0.975"])
    agg = {"sq": "mean"}
    if has_q:
        agg.update({"pl": "mean", "in50": "mean", "in95": "mean"})
    per = merged.groupby(ID, sort=True).agg(agg)
    scales = series_scales(train).reindex(per.index)
    out = pd.DataFrame(index=per.index)
    out["rmsse"] = np.sqrt(per["sq"] / scales["rmsse_scale"])
    if has_q:
        out["spl"] = per["pl"] / scales["spl_scale"]
        out["cov50"] = per["in50"].astype("float64")
        out["cov95"] = per["in95"].astype("float64")
    weights = dollar_weights(train)
    if weights is not None:
        out["weight"] = weights.reindex(out.index).fillna(0.0)
    return out


def summarize(per_series: pd.DataFrame) -> dict[str, float | int | None]:
    """Aggregate :func:`per_series_scores`: means, dollar-weighted means and coverage in percent."""
    valid = per_series.dropna(subset=["rmsse"])
    res: dict[str, float | int | None] = {"n_series": int(len(valid))}
    res["rmsse"] = float(valid["rmsse"].mean())
    has_w = "weight" in valid.columns and valid["weight"].sum() > 0
    w = valid["weight"] / valid["weight"].sum() if has_w else None
    res["wrmsse"] = float((valid["rmsse"] * w).sum()) if has_w else None
    if "spl" in valid.columns:
        res["spl"] = float(valid["spl"].mean())
        res["wspl"] = float((valid["spl"] * w).sum()) if has_w else None
        res["coverage_50"] = float(100.0 * per_series["cov50"].mean())
        res["coverage_95"] = float(100.0 * per_series["cov95"].mean())
    return res


def evaluate(forecast: pd.DataFrame, actual: pd.DataFrame, train: pd.DataFrame) -> dict[str, float | int | None]:
    """Score one forecast against actuals given the training history (for scales and dollar weights)."""
    return summarize(per_series_scores(forecast, actual, train))
