"""Does a per-SKU service allocation found in hindsight carry over to another year? (reads restock_oracle_bound dumps)

``bench/restock_oracle_bound.py --parts engine --dump FILE`` simulates the shipped engine (agent protocol, sales
only) at a grid of fixed quantile levels and keeps every SKU's average on-hand and lost units at each level. SKUs
do not interact at a fixed level (re-simulating the hindsight vector reproduced the grid's fill to 0.0002), so the
fill and stock of any per-SKU level vector follow from those curves, interpolated in logit. For each target and
each ordered pair of windows this reports, on the second window, the stock of (relative to one common level at
the same fill; the common shift of every rule is bisected to the target there):

- ``hindsight``: each SKU's level chosen on that window itself (the bound);
- ``other_window_per_sku``: each SKU's hindsight level from the *other* window, shifted by one common offset;
- ``band_rule``: one logit offset per demand band (< 0.5, 0.5-2, 2-8, >= 8 units a day over the 182 days before
  the window), fitted by coordinate search on the other window; ``band_rule_in_sample`` is its stock on the window
  it was fitted on;

and, per window, the common fixed level's and the hindsight vector's stock against the demand-fed MA(28) baseline
at equal fill. A measurement on the selection years only; nothing here is shipped.

    PYTHONPATH=src python bench/restock_oracle_bound.py --end-offset 728 --parts engine --dump /tmp/engine_728.npz
    PYTHONPATH=src python bench/restock_oracle_bound.py --end-offset 364 --parts engine --dump /tmp/engine_364.npz
    PYTHONPATH=src python bench/restock_allocation_transfer.py --dumps 728=/tmp/engine_728.npz,364=/tmp/engine_364.npz
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from shopfloor.planning.restock_backtest import DemandPanel, bisect_baseline_z, load_demand_panel, neutral_start

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"
NAME = "engine_per_sku_alpha"
TARGETS = (0.9, 0.95, 0.98)
BANDS = (0.5, 2.0, 8.0)


def load(path: str) -> dict:
    z = np.load(path)
    g = z[f"{NAME}_grid"]
    return {"lg": np.log(g / (1 - g)), "oh": z[f"{NAME}_oh"], "lost": z[f"{NAME}_lost"], "dem": z["demand"],
            "picks": {f: z[f"{NAME}_pick_{f}"] for f in TARGETS}}


def interp(w: dict, lg_i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lgs = w["lg"]
    x = np.clip(lg_i, lgs[0], lgs[-1])
    j = np.clip(np.searchsorted(lgs, x) - 1, 0, len(lgs) - 2)
    t = (x - lgs[j]) / (lgs[j + 1] - lgs[j])
    cols = np.arange(len(x))
    return ((1 - t) * w["oh"][j, cols] + t * w["oh"][j + 1, cols],
            (1 - t) * w["lost"][j, cols] + t * w["lost"][j + 1, cols])


def at_fill(w: dict, offset: np.ndarray, f: float) -> tuple[float, float]:
    """Total on-hand and fill with ``offset`` + one common logit shift bisected to fill ``f``."""
    lo, hi = -12.0, 12.0
    for _ in range(60):
        mid = (lo + hi) / 2
        _, lost = interp(w, offset + mid)
        lo, hi = (mid, hi) if 1 - lost.sum() / w["dem"].sum() < f else (lo, mid)
    oh, lost = interp(w, offset + hi)
    return float(oh.sum()), float(1 - lost.sum() / w["dem"].sum())


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-5)
    return np.log(p / (1 - p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--dumps", required=True, help="OFFSET=FILE pairs, e.g. 728=/tmp/e728.npz,364=/tmp/e364.npz")
    ap.add_argument("--test-days", type=int, default=364)
    args = ap.parse_args(argv)
    full = load_demand_panel(args.history)
    days = full.demand.shape[1]
    windows = {int(k): load(v) for k, v in (p.split("=") for p in args.dumps.split(","))}

    def band(off: int) -> np.ndarray:
        start = days - off - args.test_days - 28
        return np.digitize(full.demand[:, start - 182:start].mean(axis=1), BANDS)

    for src in windows:
        for dst in windows:
            if src == dst:
                continue
            ws, wd, bs, bd = windows[src], windows[dst], band(src), band(dst)
            for f in TARGETS:
                common, _ = at_fill(wd, np.zeros(len(bd)), f)
                hind, _ = interp(wd, logit(wd["picks"][f]))
                other = logit(ws["picks"][f])
                r1, _ = at_fill(wd, other - np.median(other), f)
                off_b = np.zeros(len(BANDS) + 1)
                best, _ = at_fill(ws, off_b[bs], f)
                for _ in range(3):
                    for b in range(len(off_b)):
                        for step in (-1.5, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 1.5):
                            trial = off_b.copy()
                            trial[b] += step
                            s, _ = at_fill(ws, trial[bs], f)
                            if s < best - 1e-9:
                                best, off_b = s, trial
                r2, _ = at_fill(wd, off_b[bd], f)
                c_in, _ = at_fill(ws, np.zeros(len(bs)), f)
                print(json.dumps({"fitted_on": src, "applied_on": dst, "target": f,
                                  "hindsight_vs_common": round(float(hind.sum()) / common, 4),
                                  "other_window_per_sku_vs_common": round(r1 / common, 4),
                                  "band_rule_vs_common": round(r2 / common, 4),
                                  "band_rule_in_sample_vs_common": round(best / c_in, 4),
                                  "band_offsets_logit": [round(float(x - off_b.mean()), 2) for x in off_b]}),
                      flush=True)
    for off, w in windows.items():
        panel = DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off]) if off else full
        start = panel.demand.shape[1] - args.test_days - 28
        stock = neutral_start(panel.demand[:, :start], 7, 1, 0.95)
        scale = len(full.ids) * args.test_days

        def ratio(oh: float, fill: float) -> float:
            eq = bisect_baseline_z(panel, fill, lead_time=7, review_days=1, start=start, warmup=28,
                                   initial_on_hand=stock)
            return round(oh / scale / eq["avg_on_hand"], 4)
        for f in TARGETS:
            c, fc = at_fill(w, np.zeros(w["dem"].shape[0]), f)
            oh, lost = interp(w, logit(w["picks"][f]))
            fh = float(1 - lost.sum() / w["dem"].sum())
            print(json.dumps({"window_end_offset": off, "target": f,
                              "engine_common_fixed_level_ratio": ratio(c, fc),
                              "engine_per_sku_hindsight_ratio": ratio(float(oh.sum()), fh)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
