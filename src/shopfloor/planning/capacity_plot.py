"""PNG of a capacity backtest: demand and ready capacity of both planners (whole trace + a zoomed window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .capacity import BacktestReport


def plot_backtest(report: BacktestReport, path: str | Path, *, zoom_minutes: int = 2 * 1440) -> Path:
    """Write the plot to ``path``. The zoom panel shows the window where the reactive baseline violates most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = report.minutes
    x = (
        pd.date_range(report.start, periods=n, freq="min")
        if report.start is not None
        else pd.RangeIndex(n)
    )
    c = report.capacity_per_replica
    demand = report.demand
    reactive_cap = report.reactive.ready * c
    predictive_cap = report.predictive.ready * c
    viol_r = (demand > reactive_cap).astype(float)
    # Zoom where the reactive baseline violates most (a sliding sum over the zoom window).
    win = min(zoom_minutes, n)
    sums = np.convolve(viol_r, np.ones(win), mode="valid")
    z0 = int(sums.argmax()) if len(sums) else 0
    zs = slice(z0, z0 + win)

    fig, axes = plt.subplots(2, 1, figsize=(14, 8), constrained_layout=True)
    step = max(1, n // 6000)  # thin the whole-trace panel: 15-minute maxima keep the peaks visible
    def thin(a):
        if step == 1:
            return a
        m = len(a) // step * step
        return a[:m].reshape(-1, step).max(axis=1)
    xs = x[: len(x) // step * step : step] if step > 1 else x
    ax = axes[0]
    ax.plot(xs, thin(demand), color="0.3", lw=0.5, label="demand (requests/min)")
    ax.plot(xs, thin(reactive_cap), color="tab:red", lw=0.6, alpha=0.8, label="reactive HPA: ready capacity")
    ax.plot(xs, thin(predictive_cap), color="tab:blue", lw=0.6, alpha=0.8, label="predictive: ready capacity")
    r, p = report.reactive, report.predictive
    ax.set_title(
        f"Capacity backtest, C={c:g} req/min/replica, lag={report.lag_minutes} min  |  violation minutes: "
        f"reactive {r.violation_minutes}, predictive {p.violation_minutes}  |  replica-minutes: "
        f"reactive {r.replica_minutes}, predictive {p.replica_minutes}"
        + (f"  (max per {step} min shown)" if step > 1 else ""),
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(x[zs], demand[zs], color="0.3", lw=0.6, label="demand")
    ax.step(x[zs], reactive_cap[zs], where="post", color="tab:red", lw=0.9, label="reactive ready capacity")
    ax.step(x[zs], predictive_cap[zs], where="post", color="tab:blue", lw=0.9, label="predictive ready capacity")
    vr = np.flatnonzero(viol_r[zs]) + z0
    vp = np.flatnonzero((demand > predictive_cap)[zs]) + z0
    ax.scatter(x[vr], demand[vr], s=6, color="tab:red", label="reactive violation", zorder=3)
    ax.scatter(x[vp], demand[vp], s=10, color="tab:blue", marker="x", label="predictive violation", zorder=4)
    ax.set_title("Zoom: the window where the reactive baseline violates most", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
