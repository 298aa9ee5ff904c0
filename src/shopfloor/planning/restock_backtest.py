"""Restock backtest: our forecast-quantile policy vs the classic normal safety-stock baseline.

Lost-sales, periodic-review simulation (:mod:`shopfloor.planning.restock_sim`) on held-out daily demand. For
each fill-rate target we report the achieved fill rate and average on-hand units of our policy, the baseline run
at ``z = Phi^-1(target)``, and the baseline's whole trade-off curve over a grid of ``z`` so that the two can be
compared at *equal achieved fill rate* (linear interpolation of the baseline's curve).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .demand_model import DemandModelConfig
from .forecast_outlook import (
    DEFAULT_FORECAST_WEIGHT,
    ForecastCache,
    Forecaster,
    PeriodicForecastModel,
    forecast_package_means,
)
from .restock import DEFAULT_ORDER_CAP, check_order_cap
from .restock_sim import SPREADS, ForecastQuantilePolicy, NormalSafetyStockPolicy, simulate

DEMAND_MODELS = ("blend", "forecast", "ses")
#: Picked by the M5 backtest (docs/benchmarks/restock.md).
DEFAULT_DEMAND = "blend"
DEFAULT_Z_GRID = tuple(np.round(np.arange(-0.5, 5.01, 0.25), 2))


@dataclass(frozen=True)
class DemandPanel:
    """Daily demand, series x days, with the weekday (0 = Monday) of each day."""

    ids: list[str]
    dates: pd.DatetimeIndex
    demand: np.ndarray

    @property
    def weekdays(self) -> np.ndarray:
        return self.dates.weekday.to_numpy()


def load_demand_panel(path: str | Path) -> DemandPanel:
    """Read a long frame: Nixtla ``unique_id, ds, y`` or the M5 long layout ``item_id, store_id, date, value``.

    Missing series-days count as zero demand. Raises ``ValueError`` naming the problem.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"history file not found: {p}")
    df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    if {"unique_id", "ds", "y"} <= set(df.columns):
        frame = df[["unique_id", "ds", "y"]].copy()
    elif {"item_id", "store_id", "date", "value"} <= set(df.columns):
        frame = pd.DataFrame(
            {"unique_id": df["item_id"].astype(str) + "_" + df["store_id"].astype(str), "ds": df["date"], "y": df["value"]}
        )
    else:
        raise ValueError("history needs columns unique_id, ds, y (or M5 long: item_id, store_id, date, value)")
    try:
        frame["ds"] = pd.to_datetime(frame["ds"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"history column ds: not a date ({exc})") from None
    y = pd.to_numeric(frame["y"], errors="coerce")
    if y.isna().any() or (y < 0).any():
        raise ValueError("history column y: demand must be a non-negative number on every row")
    frame["y"] = np.round(y).astype(np.int64)
    wide = frame.pivot_table(index="unique_id", columns="ds", values="y", aggfunc="sum", fill_value=0)
    full = pd.date_range(wide.columns.min(), wide.columns.max(), freq="D")
    wide = wide.reindex(columns=full, fill_value=0)
    return DemandPanel(list(wide.index.astype(str)), full, wide.to_numpy(dtype=np.int64))


def _interp_baseline(curve: list[dict], fill: float) -> float | None:
    pts = sorted((c["fill_rate"], c["avg_on_hand"]) for c in curve)
    fills = np.array([a for a, _ in pts])
    oh = np.array([b for _, b in pts])
    if not fills[0] <= fill <= fills[-1]:
        return None
    return float(np.interp(fill, fills, oh))


def run_restock_backtest(
    panel: DemandPanel,
    *,
    service_levels: Sequence[float] = (0.90, 0.95, 0.98),
    lead_time: int = 7,
    review_days: int = 1,
    test_days: int = 364,
    warmup_days: int = 91,
    z_grid: Sequence[float] = DEFAULT_Z_GRID,
    baseline_window: int = 28,
    model_config: DemandModelConfig | None = None,
    demand: str = DEFAULT_DEMAND,
    spread: str = "error_variance",
    forecast_model: str = "auto",
    forecast_cadence: int = 7,
    forecast_weight: float = DEFAULT_FORECAST_WEIGHT,
    calibration_days: int = 182,
    order_cap: float = DEFAULT_ORDER_CAP,
    forecaster: Forecaster | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Simulate both policies over the last ``test_days`` days (after ``warmup_days`` unscored days).

    Everything before the simulated span is history the policies learn from; inside it they see each day's
    demand only after it happened.

    ``demand`` picks our policy's mean model: ``"blend"`` (default: ``shopfloor.forecast`` re-run every
    ``forecast_cadence`` days with ``forecast_model``, weighted ``forecast_weight`` against the daily SES x
    weekday model), ``"forecast"`` (the forecast package alone, weight 1) or ``"ses"`` (SES x weekday alone).
    Forecasts start ``calibration_days`` before the simulated span, and so does the error record the spread
    is fitted on (``spread``, see :class:`ForecastQuantilePolicy`). ``order_cap`` is the capped-base-stock
    factor of our policy (:func:`~shopfloor.planning.restock.order_shortfall`; 0 = plain base stock; the
    baseline is never capped). ``forecaster`` replaces the call into the
    forecast package (tests use a fake); its results are cached per exact history, so the three targets share
    one set of forecasts.
    """
    if demand not in DEMAND_MODELS:
        raise ValueError(f"demand must be one of {DEMAND_MODELS}, got {demand!r}")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    check_order_cap(order_cap)
    for lvl in service_levels:
        if not 0.5 < lvl < 1:
            raise ValueError(f"service level {lvl} must be in (0.5, 1)")
    n, days = panel.demand.shape
    start = days - test_days - warmup_days
    if start < 2 * (lead_time + review_days) + baseline_window:
        raise ValueError(
            f"history has {days} days; need more than test_days + warmup_days + some fitting history ({test_days}"
            f" + {warmup_days} + {2 * (lead_time + review_days) + baseline_window})"
        )
    t0 = time.perf_counter()
    sim = dict(lead_time=lead_time, review_days=review_days, start=start, warmup=warmup_days)
    wd = panel.weekdays
    curve = []
    for z in z_grid:
        res = simulate(
            panel.demand, wd,
            NormalSafetyStockPolicy(n, lead_time=lead_time, review_days=review_days, z=float(z), window=baseline_window),
            **sim,
        )
        curve.append({"z": float(z), **res.summary()})
        if progress:
            progress(f"baseline z={z:.2f}")
    calibrate_from = max(start - calibration_days, 0)
    fc_cache = ForecastCache(forecaster or partial(forecast_package_means, model=forecast_model))

    def mean_model():
        if demand == "ses":
            return None  # the policy's own RollingDemandModel
        return PeriodicForecastModel(
            panel.ids, panel.dates[0].date(), lead_time + review_days, fc_cache, cadence=forecast_cadence,
            weight=1.0 if demand == "forecast" else forecast_weight, forecast_from=calibrate_from + 1,
            config=model_config,
        )

    targets = []
    for lvl in service_levels:
        pol = ForecastQuantilePolicy(
            n, lead_time=lead_time, review_days=review_days, target_fill=lvl, config=model_config,
            demand_model=mean_model(), spread=spread, calibrate_from=calibrate_from, order_cap=order_cap,
        )
        ours = simulate(panel.demand, wd, pol, **sim)
        z = float(stats.norm.ppf(lvl))
        base = simulate(
            panel.demand, wd,
            NormalSafetyStockPolicy(n, lead_time=lead_time, review_days=review_days, z=z, window=baseline_window),
            **sim,
        )
        at_equal = _interp_baseline(curve, ours.fill_rate)
        ratio = ours.avg_on_hand / at_equal if at_equal else None
        scored = pol.level_history[warmup_days:] or pol.level_history
        targets.append({
            "target": lvl,
            "ours": {**ours.summary(), "mean_quantile_level": round(float(np.mean(scored)), 4)},
            "fill_error_pts": round(100 * (ours.fill_rate - lvl), 2),
            "fill_within_1_5_pts": abs(ours.fill_rate - lvl) <= 0.015,
            "baseline_at_target_z": {"z": round(z, 4), **base.summary()},
            "baseline_on_hand_at_equal_fill": round(at_equal, 4) if at_equal else None,
            "inventory_ratio_vs_baseline": round(ratio, 4) if ratio else None,
            "inventory_reduction_pct": round(100 * (1 - ratio), 2) if ratio else None,
            "meets_inventory_target": bool(ratio is not None and ratio <= 0.90),
        })
        if progress:
            progress(f"ours target={lvl:.2f}")
    first_test = panel.dates[start + warmup_days]
    return {
        "data": {
            "series": n,
            "days": days,
            "simulated_from": panel.dates[start].date().isoformat(),
            "scored_from": first_test.date().isoformat(),
            "scored_to": panel.dates[-1].date().isoformat(),
            "scored_days": test_days,
        },
        "lead_time_days": lead_time,
        "review_days": review_days,
        "policy": _policy_text(demand, spread, forecast_model, forecast_cadence, forecast_weight, order_cap),
        "demand_model": demand,
        "spread": spread,
        "order_cap": order_cap,
        "forecast_model": forecast_model if demand != "ses" else None,
        "forecast_calls": fc_cache.calls,
        "baseline": f"MA({baseline_window}) x (L+R) + z * sigma * sqrt(L+R)",
        "targets": targets,
        "baseline_curve": curve,
        "runtime_s": round(time.perf_counter() - t0, 2),
    }


def _policy_text(demand: str, spread: str, model: str, cadence: int, weight: float, order_cap: float) -> str:
    means = {
        "ses": "SES x weekday mean",
        "forecast": f"shopfloor.forecast ({model}) mean, re-forecast every {cadence} d",
        "blend": f"{weight:g} x shopfloor.forecast ({model}, re-forecast every {cadence} d) + "
        f"{1 - weight:g} x daily SES x weekday mean",
    }[demand]
    spreads = {
        "error_variance": "variance = weighted mean square of its own past (L+R)-day errors, nudged to recent "
        "volatility",
        "nb_shrunk": "NB dispersion from its own (L+R)-day errors, shrunk to pooled",
    }[spread]
    orders = (f"orders capped at {order_cap:g} x the level's daily rate unless below the reorder point" if order_cap
              else "uncapped orders")
    return (f"NB lead-time demand quantile ({means}; {spreads}), common quantile level steered by realised fill; "
            f"{orders}")


def plot_tradeoff(result: dict, path: str | Path) -> Path:
    """Save the fill-rate vs average-on-hand trade-off (baseline curve, our points) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = sorted(result["baseline_curve"], key=lambda c: c["z"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot([c["avg_on_hand"] for c in curve], [100 * c["fill_rate"] for c in curve], "o-", color="tab:gray",
            label=result["baseline"] + " (z grid)")
    for c in curve[:: max(len(curve) // 6, 1)]:
        ax.annotate(f"z={c['z']:g}", (c["avg_on_hand"], 100 * c["fill_rate"]), fontsize=7,
                    textcoords="offset points", xytext=(4, -10), color="tab:gray")
    markers = iter(["^--", "v--", "D--", "x--"])
    for name, variant in result.get("variants", {}).items():
        pts = variant["targets"]
        ax.plot([t["ours"]["avg_on_hand"] for t in pts], [100 * t["ours"]["fill_rate"] for t in pts], next(markers),
                lw=0.8, alpha=0.8, label=f"variant: {name}")
    ours = result["targets"]
    ax.plot([t["ours"]["avg_on_hand"] for t in ours], [100 * t["ours"]["fill_rate"] for t in ours], "s-",
            color="tab:blue", label=f"ours ({result.get('demand_model', 'ses')}, {result.get('spread', 'nb_shrunk')}"
            + (f", orders capped at {result['order_cap']:g}x" if result.get("order_cap") else "") + ")")
    for t in ours:
        ax.axhline(100 * t["target"], color="tab:blue", lw=0.5, ls=":")
        ax.annotate(f"target {t['target']:.2f}", (t["ours"]["avg_on_hand"], 100 * t["ours"]["fill_rate"]),
                    fontsize=7, textcoords="offset points", xytext=(6, 4), color="tab:blue")
    d = result["data"]
    ax.set_xlabel("average on-hand units per series-day")
    ax.set_ylabel("achieved fill rate (%)")
    ax.set_title(f"Restock trade-off, lost sales, L={result['lead_time_days']}d, R={result['review_days']}d, "
                 f"{d['series']} series, {d['scored_from']}..{d['scored_to']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
