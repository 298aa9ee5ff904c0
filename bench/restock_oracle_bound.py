"""How much stock any per-SKU safety-stock rule could save: hindsight (oracle) bounds against the MA(28) baseline.

The same lost-sales simulator and scoring as ``bench/restock_backtest.py`` (daily review, L = 7, 28-day warm-up,
364 scored days, unmet demand lost; demand-fed policies, so the bounds know more than the agent). One starting
stock for every policy and fill (the textbook level for 0.95 from the last 28 days; nothing in transit). For each
policy family the per-SKU trajectories are independent, so every SKU is simulated at each value of a grid of its
safety parameter, and the per-SKU choice that minimises total average on-hand for the aggregate (unit-weighted)
fill is picked **in hindsight** by Lagrangian relaxation: for a shortage price ``lam`` each SKU takes the grid value
minimising ``on-hand + lam * lost units``; ``lam`` is bisected until the aggregate fill reaches the target. The
chosen per-SKU vector is then simulated again (the figure reported), and the baseline (one common ``z``) is
bisected to that run's fill, as in the backtest. Ratio = bound's average on-hand / baseline's at equal fill.

Families (``--parts``):

- ``ma``: ``MA(28)*(L+R) + z_i*sigma*sqrt(L+R)``, the baseline's own forecast and sigma, ``z_i`` per SKU in
  hindsight: the best any per-SKU safety-stock rule can do with the baseline's forecast.
- ``oracle``: a forecast that knows the demand level of the protection interval but not its own draws: the mean
  of the 14 days before and the 14 days after the interval (the interval itself excluded; near the panel's end
  the after-part is what exists), ``x (L+R)``, plus ``z*sd*sqrt(L+R)`` with the sd of those 28 days; reported with
  one common ``z`` (bisected to the target) and with ``z_i`` per SKU in hindsight.
- ``centred``: the same with the 28 days centred on the interval, the interval included (it sees 8/28 of its
  own draws: an optimistic level oracle).
- ``engine``: the shipped engine (agent protocol, sees sales only) with its fill controller replaced by a fixed
  quantile level per SKU, chosen in hindsight from a grid: how much a per-SKU service allocation could add to
  the forecast the engine already has. SKUs are coupled only weakly in the engine (pooled priors); the
  re-simulation with the chosen vector is the figure.

A measurement, not a policy: every choice here sees the scored days. Run on the selection years only
(``--end-offset 728`` = M5 2013-14, ``364`` = 2014-15).

    PYTHONPATH=src nice python bench/restock_oracle_bound.py --end-offset 364 --parts ma,oracle,centred
    PYTHONPATH=src nice python bench/restock_oracle_bound.py --end-offset 364 --parts engine
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from _restock_args import M5, window_arguments  # bench/, the script's own folder
from shopfloor.planning.restock_backtest import DemandPanel, bisect_baseline_z, load_demand_panel, neutral_start
from shopfloor.planning.restock_sim import NormalSafetyStockPolicy, simulate

L, R, WARMUP = 7, 1, 28


class OracleLevelPolicy(NormalSafetyStockPolicy):
    """Order up to ``m*(L+R) + z*sd*sqrt(L+R)``, ``m``/``sd`` from days around the protection interval (future
    included: an oracle). ``mode="around"``: 14 days before and 14 after, the interval excluded;
    ``"centred"``: 28 days centred on it, the interval included."""

    def __init__(self, demand: np.ndarray, z, mode: str = "around", half: int = 14) -> None:
        super().__init__(demand.shape[0], lead_time=L, review_days=R, z=0.0)
        self.z = z
        self.dem = np.asarray(demand, dtype=float)
        self.mode = mode
        self.half = half
        self.days = demand.shape[1]

    def order_up_to(self) -> np.ndarray:
        t1 = self.seen  # first day of the protection interval t1 .. t1 + L + R - 1
        h = self.protection
        if self.mode == "around":
            before = self.dem[:, max(t1 - self.half, 0):t1]
            after = self.dem[:, min(t1 + h, self.days):min(t1 + h + self.half, self.days)]
            hist = np.concatenate([before, after], axis=1)
        else:
            c = t1 + h // 2
            hist = self.dem[:, max(c - self.half, 0):min(c + self.half, self.days)]
        mu = hist.mean(axis=1)
        sd = hist.std(axis=1, ddof=1)
        return np.maximum(np.ceil(mu * h + self.z * sd * np.sqrt(h)), 0).astype(np.int64)


def per_sku_grid(run, grid):
    """Simulate every grid value (one common value per run); per-SKU on-hand sums and lost units."""
    oh, lost, dem = [], [], None
    for g in grid:
        r = run(g)
        oh.append(r.on_hand_sum.copy())
        lost.append(r.demand - r.sales)
        dem = r.demand
    return np.array(oh), np.array(lost), dem


def lagrange_pick(oh: np.ndarray, lost: np.ndarray, demand: np.ndarray, fill: float) -> tuple[np.ndarray, float]:
    """Per-SKU grid index minimising total on-hand with aggregate fill >= ``fill`` (on the convex hull)."""
    tot = demand.sum()
    budget = (1 - fill) * tot
    cols = np.arange(oh.shape[1])

    def choose(lam):
        return np.argmin(oh + lam * lost, axis=0)

    lo, hi = 1e-6, 1e9
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        if lost[choose(mid), cols].sum() <= budget:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1 + 1e-9:
            break
    k = choose(hi)
    return k, 1 - lost[k, cols].sum() / tot


def bound_rows(panel, start, stock, name, run_vec, grid, targets, dump=None):
    """Hindsight per-SKU pick on ``grid`` for each target; returns rows with ratio vs baseline at equal fill.
    ``dump``: a dict that receives the per-SKU grid results and picks (saved with ``--dump``)."""
    t0 = time.perf_counter()
    oh, lost, dem = per_sku_grid(run_vec, grid)
    if dump is not None:
        dump.update({f"{name}_grid": np.asarray(grid), f"{name}_oh": oh, f"{name}_lost": lost, "demand": dem})
    rows = []
    for f in targets:
        k, f_pred = lagrange_pick(oh, lost, dem, f)
        vec = np.asarray(grid)[k]
        if dump is not None:
            dump[f"{name}_pick_{f}"] = vec
        r = run_vec(vec)
        eq = bisect_baseline_z(panel, r.fill_rate, lead_time=L, review_days=R, start=start, warmup=WARMUP,
                               initial_on_hand=stock)
        row = {"policy": name, "per_sku": True, "target": f, "fill": round(r.fill_rate, 4),
               "fill_from_grid": round(float(f_pred), 4), "avg_on_hand": round(r.avg_on_hand, 3),
               "baseline_z": eq["z"], "baseline_on_hand": eq["avg_on_hand"],
               "ratio": round(r.avg_on_hand / eq["avg_on_hand"], 4) if eq["matched"] else None,
               "param_quartiles": [round(float(q), 4) for q in np.percentile(vec, [10, 25, 50, 75, 90])]}
        rows.append(row)
    for row in rows:
        row["seconds"] = round(time.perf_counter() - t0, 1)
    return rows


def common_rows(panel, start, stock, name, run_vec, targets, lo=-1.0, hi=6.0, iters=30, tol=2e-4):
    """One common parameter, bisected to each target."""
    rows = []
    for f in targets:
        a, b = lo, hi
        best = None
        for _ in range(iters):
            mid = 0.5 * (a + b)
            r = run_vec(mid)
            if best is None or abs(r.fill_rate - f) < abs(best[1].fill_rate - f):
                best = (mid, r)
            a, b = (mid, b) if r.fill_rate < f else (a, mid)
            if abs(r.fill_rate - f) < tol:
                break
        z, r = best
        eq = bisect_baseline_z(panel, r.fill_rate, lead_time=L, review_days=R, start=start, warmup=WARMUP,
                               initial_on_hand=stock)
        rows.append({"policy": name, "per_sku": False, "target": f, "fill": round(r.fill_rate, 4),
                     "param": round(z, 4), "avg_on_hand": round(r.avg_on_hand, 3),
                     "baseline_z": eq["z"], "baseline_on_hand": eq["avg_on_hand"],
                     "ratio": round(r.avg_on_hand / eq["avg_on_hand"], 4) if eq["matched"] else None})
    return rows


def engine_runner(panel: DemandPanel, start: int, stock: np.ndarray, tuning_text: str = ""):
    """run(alpha) -> SimulationResult of the shipped agent with a fixed quantile level (scalar or per panel SKU)."""
    from shopfloor.planning.restock_agent import ReplenishmentAgent
    from shopfloor.planning.restock_backtest import simulate_agent
    from shopfloor.planning.restock_engine import EngineTuning, RestockEngine

    class Fixed(RestockEngine):
        fixed = None  # set after the history is replayed (the lost-demand calibration keeps the controller)

        @property
        def alpha(self):
            if self.fixed is None:
                return super().alpha
            return self.fixed

    ids = list(panel.ids)

    def run(alpha):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=L)
        agent.engine = Fixed(lead_time=L, review_days=R, fill_rate=0.95, tuning=EngineTuning.from_text(tuning_text))
        eng = agent.engine
        # the first line both replays the history and orders: fix the level before that order, after the replay
        orig_replay = agent._replay

        def replay_then_fix(rows, first_day):
            orig_replay(rows, first_day)
            a = np.asarray(alpha, dtype=float)
            if a.ndim == 0:
                eng.fixed = float(a)
            else:
                vec = np.full(eng.n, float(np.median(a)))
                for i, sku in enumerate(ids):
                    vec[eng.index[sku]] = a[i]
                eng.fixed = vec
        agent._replay = replay_then_fix
        return simulate_agent(panel, agent.handle, lead_time=L, start=start, warmup=WARMUP, on_hand=stock)

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    ap.add_argument("--parts", default="ma,oracle,centred")
    ap.add_argument("--alphas", default="0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.75,0.8,0.85,0.88,0.9,0.92,0.94,0.95,0.96,"
                                        "0.97,0.98,0.985,0.99,0.995,0.998,0.999,0.9995")
    ap.add_argument("--dump", default="", help="save per-SKU grids and picks to this .npz")
    ap.add_argument("--apply", default="",
                    help="engine only: a --dump .npz of another window; apply its per-SKU picks here, shifted in "
                         "logit by one common offset bisected to each target (a per-SKU allocation learned on "
                         "another year)")
    ap.add_argument("--tuning", default="", help="engine knobs for the engine part, e.g. forecast_model=level")
    args = ap.parse_args(argv)
    full = load_demand_panel(args.history)
    off = args.end_offset
    panel = full if off == 0 else DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off])
    n, days = panel.demand.shape
    start = days - args.test_days - WARMUP
    stock = neutral_start(panel.demand[:, :start], L, R, 0.95)
    targets = [float(x) for x in args.fill_rates.split(",")]
    scored = f"{panel.dates[start + WARMUP].date()}..{panel.dates[-1].date()}"
    zgrid = list(np.round(np.arange(-3.0, 6.001, 0.1), 2))

    def sim(policy):
        return simulate(panel.demand, panel.weekdays, policy, lead_time=L, review_days=R, start=start,
                        warmup=WARMUP, initial_on_hand=stock)

    rows: list[dict] = []
    dump: dict | None = {"ids": np.asarray(panel.ids)} if args.dump else None
    parts = args.parts.split(",")
    if "ma" in parts:
        def run_ma(z):
            return sim(NormalSafetyStockPolicy(n, lead_time=L, review_days=R, z=np.asarray(z, dtype=float)))
        rows += bound_rows(panel, start, stock, "ma28_per_sku_z", run_ma, zgrid, targets, dump)
    for mode in ("oracle", "centred"):
        if mode in parts:
            m = "around" if mode == "oracle" else "centred"

            def run_o(z, m=m):
                return sim(OracleLevelPolicy(panel.demand, np.asarray(z, dtype=float), m))
            rows += common_rows(panel, start, stock, f"{mode}_level_common_z", run_o, targets)
            rows += bound_rows(panel, start, stock, f"{mode}_level_per_sku_z", run_o, zgrid, targets, dump)
    if "engine" in parts:
        run_e = engine_runner(panel, start, stock, args.tuning)
        grid = [float(x) for x in args.alphas.split(",")]
        if args.apply:
            src = np.load(args.apply)
            assert list(src["ids"]) == list(panel.ids)
            for f in targets:
                base = np.clip(src[f"engine_per_sku_alpha_pick_{f}"], 1e-4, 1 - 1e-5)
                lg = np.log(base / (1 - base))

                def run_shift(d, lg=lg):
                    return run_e(1.0 / (1.0 + np.exp(-(lg + d))))
                r = common_rows(panel, start, stock, "engine_per_sku_alpha_from_other_window", run_shift, [f],
                                lo=-4.0, hi=4.0, iters=12, tol=5e-4)
                rows += r
        else:
            rows += bound_rows(panel, start, stock, "engine_per_sku_alpha", run_e, grid, targets, dump)
    if dump is not None:
        np.savez_compressed(args.dump, **dump)
    for row in rows:
        print(json.dumps({"scored": scored, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
