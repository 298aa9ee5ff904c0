"""Calibration plot of a backtest: promised vs actual days, and on-time rate by week."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence


def plot_calibration(rows: Sequence, path: Path, confidence: float, extra: dict[float, Sequence] | None = None) -> None:
    """Write a two-panel PNG. ``extra`` adds on-time-by-week lines for other confidence levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r.delivered_date is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    actual = [(r.delivered_date - r.purchased_at.date()).days for r in scored]
    promised = [(r.promised_date - r.purchased_at.date()).days for r in scored]
    ref = [(r.reference_date - r.purchased_at.date()).days for r in scored if r.reference_date]
    ref_actual = [(r.delivered_date - r.purchased_at.date()).days for r in scored if r.reference_date]
    ax1.scatter(promised, actual, s=4, alpha=0.25, label=f"engine @ {confidence:.2f}")
    ax1.scatter(ref, ref_actual, s=4, alpha=0.15, color="grey", label="dataset estimate")
    top = max(promised + actual + ref + [1])
    ax1.plot([0, top], [0, top], color="black", lw=1, label="on time below this line")
    ax1.set_xlabel("promised days")
    ax1.set_ylabel("actual days")
    ax1.set_xlim(0, min(top, 60))
    ax1.set_ylim(0, min(top, 60))
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("Promised vs actual delivery days")

    def weekly(rs, key):
        weeks = defaultdict(list)
        for r in rs:
            if r.delivered_date is None:
                continue
            iso = r.purchased_at.date().isocalendar()
            weeks[(iso[0], iso[1])].append(key(r))
        ks = sorted(weeks)
        return list(range(len(ks))), [sum(weeks[k]) / len(weeks[k]) for k in ks], ks

    x, y, ks = weekly(scored, lambda r: r.delivered_date <= r.promised_date)
    ax2.plot(x, y, marker="o", ms=3, label=f"engine @ {confidence:.2f}")
    for conf, other in sorted((extra or {}).items()):
        xo, yo, _ = weekly(other, lambda r: r.delivered_date <= r.promised_date)
        ax2.plot(xo, yo, marker=".", ms=3, lw=1, label=f"engine @ {conf:.2f}")
        ax2.axhline(conf, lw=0.6, ls=":", color="black")
    xr, yr, _ = weekly([r for r in scored if r.reference_date], lambda r: r.delivered_date <= r.reference_date)
    ax2.plot(xr, yr, color="grey", lw=1, label="dataset estimate")
    ax2.axhline(confidence, lw=0.8, ls="--", color="black")
    ax2.set_xticks(x[:: max(1, len(x) // 8)])
    ax2.set_xticklabels([f"{k[0]}-W{k[1]:02d}" for k in ks][:: max(1, len(x) // 8)], fontsize=7, rotation=30)
    ax2.set_ylim(0.5, 1.01)
    ax2.set_ylabel("on-time rate (by purchase week)")
    ax2.set_title("On-time rate by week")
    ax2.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
