"""Selection kept apart from reporting: ``shopfloor forecast backtest --select-before DATE``.

Every choice behind ``model="auto"`` (the ensemble's members, their weights, the NB dispersion scale) is made by
:func:`select_default` on *selection origins*: backtest cutoffs whose scored days all end before ``DATE``. It is
handed a copy of the history cut at ``DATE``, so it cannot look at later data, and it refuses an origin whose scored
days would reach ``DATE`` (:class:`SelectionLeakError`). :func:`report` then scores the chosen default against
AutoETS and SeasonalNaive on *reporting origins*, whose scored days all fall on or after ``DATE``: figures there are
out-of-sample for the choice. Both score the same two segments the held-back check uses: days 1..28 and days 29..56
of a 56-day forecast, with the future covariates a real forecast has (``price`` = the last price known at the
cutoff; see :func:`shopfloor.forecast.backtest.origin_future`).

Origins: reporting cutoffs are the last one with a full horizon (last day - 56) and every ``report_step`` (91) days
back from the last day of history, so that with data ending in late April they include late April of each earlier
year (days 29..56 then fall in late May-June, the held-back window's season). Selection cutoffs are every
``select_step`` days back from the last day, among those whose horizon ends before ``DATE``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .backtest import MemberCache, origin_forecasts, score_days
from .demand import DEFAULTS_VERSION, DefaultSelection, ForecastConfig
from .frames import ID, TARGET, TIME, ForecastInputError, validate_history
from .metrics import dollar_weights, series_scales
from .models import parse_weighted_spec


class SelectionLeakError(ForecastInputError):
    """A selection step would use data on or after ``select_before``."""


@dataclass(frozen=True)
class ProtocolSpec:
    """``select_before``: every selection origin's scored days end before it, every reporting origin's start on or
    after it. ``segments``: horizon days scored (1-based, inclusive) of a ``horizon``-day forecast."""

    select_before: pd.Timestamp
    horizon: int = 56
    segments: tuple[tuple[int, int], ...] = ((1, 28), (29, 56))
    report_step: int = 91
    select_step: int = 91
    #: Days of history before a selection origin (the LightGBMs train on up to 540 days plus their lag windows).
    min_train_days: int = 540
    conformal_windows: int = 3
    carry_forward: tuple[str, ...] = ("price",)
    #: Intervals of the reported baselines: "conformal" (``conformal_windows + 1`` AutoETS fits per origin) or
    #: "model" (AutoETS's own intervals, one fit).
    baseline_intervals: str = "conformal"


@dataclass(frozen=True)
class SelectionGrid:
    """What selection may choose from. ``candidates``: model specs (member sets; weights are fitted); ``shrink``:
    fitted weights are pulled this far towards equal weights (1 = equal weights); ``weight_step``: grid step of the
    fitted weights; ``dispersion_scales`` x ``dispersion_growths``: NB dispersion multipliers and growths per 28
    horizon days tried; ``coverage_band``: the 95 % coverage the dispersion must keep on the selection origins
    (percent, mean over origins and segments); ``origin_coverage_band``: the 95 % coverage it must keep on every
    selection origin-segment. The lowest-wSPL setting inside both bands wins; when none is, the one inside the
    mean band with the fewest origin-segments outside theirs (then the lowest wSPL), else the mean closest to 95."""

    candidates: tuple[str, ...]
    shrink: float = 0.5
    weight_step: float = 0.1
    dispersion_scales: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
    dispersion_growths: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    coverage_band: tuple[float, float] = (93.5, 96.5)
    origin_coverage_band: tuple[float, float] = (92.0, 98.0)
    #: When given, a per-week dispersion is chosen as well (:func:`select_week_dispersion`) from these scales, and
    #: it replaces the (scale, growth) setting when :func:`prefer_week_dispersion` says so.
    week_scales: tuple[float, ...] | None = None
    #: 95 % coverage every selection origin must keep in each horizon week, and every selection origin-segment
    #: under the per-week setting: [92, 98] with a point of margin on each side.
    week_coverage_band: tuple[float, float] = (93.0, 97.0)


#: Candidates ``backtest --select-before`` chooses among when none are given (weights are fitted, then shrunk).
DEFAULT_CANDIDATES: tuple[str, ...] = (
    "lgbm_rel+ets_nt",
    "lgbm_rel_recent+ets_nt",
    "lgbm_rel+lgbm_mh+ets_nt",
    "lgbm_rel+lgbm+ets_nt",
    "lgbm_rel+seas_es+ets_nt",
    "lgbm_mh+lgbm+seas_es+ets_nt",
    "lgbm_tw_store+ets_nt",
    "lgbm_tw_dept+ets_nt",
    "lgbm_rel+lgbm_tw_store+ets_nt",
    "lgbm_rel+lgbm_tw_dept+ets_nt",
)


def _origin_grid(last: pd.Timestamp, step: int, horizon: int, earliest: pd.Timestamp) -> list[pd.Timestamp]:
    """Cutoffs every ``step`` days back from ``last`` with a full ``horizon`` after them, down to ``earliest``."""
    j = int(np.ceil(horizon / step))
    out = []
    while (c := last - pd.Timedelta(days=step * j)) >= earliest:
        out.append(c)
        j += 1
    return out


def protocol_origins(history: pd.DataFrame, spec: ProtocolSpec) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """``(selection cutoffs, reporting cutoffs)``, each oldest first, for a validated history."""
    first, last = history[TIME].min(), history[TIME].max()
    earliest = first + pd.Timedelta(days=spec.min_train_days)
    before = pd.Timestamp(spec.select_before)
    h = pd.Timedelta(days=spec.horizon)
    selection = [c for c in _origin_grid(last, spec.select_step, spec.horizon, earliest) if c + h < before]
    reporting = {last - h, *_origin_grid(last, spec.report_step, spec.horizon, earliest)}
    reporting = {c for c in reporting if c + pd.Timedelta(days=1) >= before and earliest <= c}
    return sorted(selection), sorted(reporting)


def check_selection_origins(cutoffs: list[pd.Timestamp], horizon: int, select_before: pd.Timestamp) -> None:
    """Refuse any selection origin whose scored days reach ``select_before``."""
    for c in cutoffs:
        end = pd.Timestamp(c) + pd.Timedelta(days=horizon)
        if end >= pd.Timestamp(select_before):
            raise SelectionLeakError(
                f"selection origin {pd.Timestamp(c).date()} is scored up to {end.date()}, on or after "
                f"--select-before {pd.Timestamp(select_before).date()}: selection may only use days before it",
                "select_before")


def history_before(history: pd.DataFrame, select_before: pd.Timestamp) -> pd.DataFrame:
    """A copy of a validated history holding only days before ``select_before``: all that selection is given."""
    past = history[history[TIME] < pd.Timestamp(select_before)].copy()
    if past.empty:
        raise ForecastInputError(f"no history before --select-before {pd.Timestamp(select_before).date()}",
                                 "select_before")
    return past.reset_index(drop=True)


def _weight_grid(n: int, step: float) -> list[np.ndarray]:
    k = int(round(1.0 / step))
    out = []
    for combo in itertools.product(range(k + 1), repeat=n):
        if sum(combo) == k and all(c > 0 for c in combo):
            out.append(np.array(combo, dtype="float64") / k)
    return out or [np.full(n, 1.0 / n)]


def _spec_from_weights(members: list[str], weights: np.ndarray) -> str:
    if np.allclose(weights, weights[0]):
        return "+".join(members)
    return "+".join(f"{m}*{w:.3f}" for m, w in zip(members, weights))


@dataclass
class _Origin:
    cutoff: pd.Timestamp
    train: pd.DataFrame
    actual: pd.DataFrame
    members: dict[str, np.ndarray]
    grid: pd.DataFrame  # unique_id, ds of the point forecasts
    baselines: dict[str, pd.DataFrame]


def _member_forecasts(
    hist: pd.DataFrame, cutoffs: list[pd.Timestamp], members: list[str], cfg: ForecastConfig, spec: ProtocolSpec,
    cache: MemberCache | None, n_jobs: int, progress: Callable[[str], None] | None,
) -> list[_Origin]:
    """Each member's point forecast (through the pipeline, fallbacks included) and the baselines, per origin."""
    origins = []
    for cutoff in cutoffs:
        train, actual, fcs = origin_forecasts(
            hist, cutoff, spec.horizon, members, cfg, carry_forward=spec.carry_forward,
            baselines=True, baseline_intervals=False, n_jobs=n_jobs, cache=cache, progress=progress)
        grid = fcs[members[0]][[ID, TIME]]
        vals = {m: fcs[m]["mean"].to_numpy(dtype="float64") for m in members}
        base = {k.removeprefix("baseline:"): v for k, v in fcs.items() if k.startswith("baseline:")}
        origins.append(_Origin(cutoff, train, actual, vals, grid, base))
    return origins


class _SegmentScorer:
    """Dollar-weighted RMSSE of point forecasts on the origin's grid for one segment, as :func:`score_days` computes
    it, with the actuals, scales and weights aligned once (selection scores hundreds of weightings per origin)."""

    def __init__(self, o: _Origin, first: int, last: int) -> None:
        lo, hi = o.cutoff + pd.Timedelta(days=first - 1), o.cutoff + pd.Timedelta(days=last)
        test = o.actual[(o.actual[TIME] > lo) & (o.actual[TIME] <= hi)]
        pos = o.grid.reset_index(drop=True).reset_index().merge(test[[ID, TIME, TARGET]], on=[ID, TIME], how="inner")
        self.rows = pos["index"].to_numpy()
        self.y = pos[TARGET].to_numpy(dtype="float64")
        codes, ids = pd.factorize(pos[ID])
        self.codes, self.n = codes, len(ids)
        self.count = np.bincount(codes, minlength=self.n)
        scale = series_scales(o.train)["rmsse_scale"].reindex(ids).to_numpy(dtype="float64")
        weights = dollar_weights(o.train)
        w = (weights.reindex(ids).fillna(0.0).to_numpy(dtype="float64") if weights is not None
             else np.full(self.n, np.nan))
        self.valid = np.isfinite(scale)
        self.scale, self.w = scale[self.valid], w[self.valid]

    def wrmsse(self, mean: np.ndarray) -> float:
        sq = np.bincount(self.codes, weights=(self.y - mean[self.rows]) ** 2, minlength=self.n) / self.count
        rmsse = np.sqrt(sq[self.valid] / self.scale)
        return float((rmsse * self.w).sum() / self.w.sum())


def _relative_wrmsse(scorers: dict, mean: np.ndarray, segments, ref: dict) -> list[float]:
    return [scorers[seg].wrmsse(mean) / ref[seg] for seg in segments]


def select_default(
    history: pd.DataFrame, spec: ProtocolSpec, grid: SelectionGrid, *, config: ForecastConfig | None = None,
    cutoffs: list[pd.Timestamp] | None = None, cache_dir: str | Path | None = None, n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[DefaultSelection, dict[str, Any]]:
    """Choose the default (members, weights shrunk towards equal, dispersion scale) on selection origins only.

    The history is cut at ``spec.select_before`` before anything else happens, and explicit ``cutoffs`` whose
    scored days reach that date are refused. The score of a candidate is its dollar-weighted RMSSE relative to
    SeasonalNaive on the same days, averaged over origins and segments (so every origin counts the same)."""
    before = pd.Timestamp(spec.select_before)
    past = history_before(validate_history(history), before)
    if cutoffs is None:
        cutoffs, _ = protocol_origins(past, replace(spec, select_before=before))
    if not cutoffs:
        raise ForecastInputError(
            f"no selection origin: need {spec.min_train_days} days of history and a {spec.horizon}-day horizon "
            f"before {before.date()}", "select_before")
    check_selection_origins(cutoffs, spec.horizon, before)
    cfg = config or ForecastConfig()
    cache = MemberCache(cache_dir) if cache_dir is not None else None
    members = sorted({m for c in grid.candidates for m, _ in parse_weighted_spec(c)})
    origins = _member_forecasts(past, cutoffs, members, cfg, spec, cache, n_jobs, progress)
    # Candidates are measured relative to SeasonalNaive on the same days (cheap, and every origin counts the same);
    # the AutoETS the report compares against is never fitted on a selection origin.
    ref = [{seg: score_days(o.baselines["snaive"], o.actual, o.train, o.cutoff, *seg)["wrmsse"]
            for seg in spec.segments} for o in origins]
    scorers = [{seg: _SegmentScorer(o, *seg) for seg in spec.segments} for o in origins]

    table = []
    for cand in grid.candidates:
        names = [m for m, _ in parse_weighted_spec(cand)]
        best_w, best = None, np.inf
        for w in _weight_grid(len(names), grid.weight_step):
            rel = [_relative_wrmsse(sc, sum(wi * o.members[m] for wi, m in zip(w, names)), spec.segments, e)
                   for o, sc, e in zip(origins, scorers, ref)]
            score = float(np.mean(rel))
            if score < best:
                best, best_w = score, w
        equal = np.full(len(names), 1.0 / len(names))
        shrunk = grid.shrink * equal + (1.0 - grid.shrink) * best_w
        rel = [_relative_wrmsse(sc, sum(wi * o.members[m] for wi, m in zip(shrunk, names)), spec.segments, e)
               for o, sc, e in zip(origins, scorers, ref)]
        table.append({"candidate": cand, "spec": _spec_from_weights(names, shrunk),
                      "fitted_weights": [round(float(x), 3) for x in best_w], "fitted_score": best,
                      "score": float(np.mean(rel)), "worst_origin": float(np.max(rel))})
    chosen = min(table, key=lambda r: r["score"])

    disp = select_dispersion(origins, chosen["spec"], cfg, spec, grid)
    pick = next(d for d in disp if d["chosen"])
    weekly = None
    if grid.week_scales:
        weekly = select_week_dispersion(origins, chosen["spec"], cfg, spec, grid)
        weekly["scalar"] = segment_coverage(origins, chosen["spec"], cfg, spec, replace(
            cfg.dispersion, scale=float(pick["scale"]), growth=float(pick["growth"]), week_scales=None))
        weekly["chosen"] = prefer_week_dispersion(weekly["result"], weekly["scalar"], grid.week_coverage_band)

    details = {
        "selected_on": {"cutoffs": [str(c.date()) for c in cutoffs], "horizon": spec.horizon,
                        "segments": [list(s) for s in spec.segments], "carry_forward": list(spec.carry_forward),
                        "shrink_towards_equal": grid.shrink},
        "candidates": table,
        "dispersion": disp,
    }
    scale, growth, week_scales = float(pick["scale"]), float(pick["growth"]), None
    if weekly is not None:
        details["dispersion_per_week"] = weekly
        if weekly["chosen"]:
            scale, growth, week_scales = 1.0, 0.0, tuple(weekly["week_scales"])
    selection = DefaultSelection(model=chosen["spec"], dispersion_scale=scale, dispersion_growth=growth,
                                 select_before=str(before.date()), version=DEFAULTS_VERSION, details=details,
                                 dispersion_week_scales=week_scales)
    return selection, details


def _dispersion_bases(origins: list[_Origin], model: str, cfg: ForecastConfig, spec: ProtocolSpec) -> list:
    """Per origin: the pipeline's ``unique_id, ds, mean, dispersion`` at scale 1 and no growth, and its steps."""
    base_cfg = replace(cfg, dispersion=replace(cfg.dispersion, scale=1.0, growth=0.0, week_scales=None))
    bases = []
    for o in origins:
        fc = _pipeline_forecast(o, model, base_cfg, spec, distribution=True)
        step = fc.groupby(ID, sort=False).cumcount().to_numpy() + 1
        bases.append((o, fc, step))
    return bases


def _quantile_frame(fc: pd.DataFrame, alpha: np.ndarray) -> pd.DataFrame:
    from .distribution import nb_quantiles
    from .frames import QUANTILE_COLUMNS

    frame = fc[[ID, TIME, "mean"]].copy()
    frame[list(QUANTILE_COLUMNS)] = nb_quantiles(fc["mean"].to_numpy(), alpha)
    return frame


def select_week_dispersion(
    origins: list[_Origin], model: str, cfg: ForecastConfig, spec: ProtocolSpec, grid: SelectionGrid,
) -> dict[str, Any]:
    """A dispersion multiplier per horizon week, chosen on the selection origins: for each week, the scale from
    ``grid.week_scales`` with the lowest mean wSPL over the origins whose 95 % coverage in that week stays inside
    ``grid.week_coverage_band`` on *every* origin; when no scale does, the one whose worst origin is nearest the
    band (then the lowest wSPL). Returns the per-week table, the scales and the result per origin-segment."""
    bases = _dispersion_bases(origins, model, cfg, spec)
    weeks = -(-spec.horizon // 7)
    lo, hi = grid.week_coverage_band
    table: list[dict[str, Any]] = []
    for scale in grid.week_scales or ():
        per_week: list[list[tuple[float, float]]] = [[] for _ in range(weeks)]
        for o, fc, step in bases:
            frame = _quantile_frame(fc, fc["dispersion"].to_numpy() * scale)
            for w in range(weeks):
                sc = score_days(frame, o.actual, o.train, o.cutoff, 7 * w + 1, min(7 * w + 7, spec.horizon))
                per_week[w].append((sc["wspl"], sc["coverage_95"]))
        for w in range(weeks):
            cov = [c for _, c in per_week[w]]
            table.append({"week": w + 1, "scale": scale, "wspl": float(np.mean([x for x, _ in per_week[w]])),
                          "coverage_95": float(np.mean(cov)), "coverage_95_min": float(min(cov)),
                          "coverage_95_max": float(max(cov)),
                          "outside_by": float(max(0.0, lo - min(cov), max(cov) - hi)), "chosen": False})
    chosen_scales = []
    for w in range(weeks):
        rows = [r for r in table if r["week"] == w + 1]
        pick = min(rows, key=lambda r: (r["outside_by"], r["wspl"]))
        pick["chosen"] = True
        chosen_scales.append(float(pick["scale"]))
    result = segment_coverage(origins, model, cfg, spec, replace(
        cfg.dispersion, scale=1.0, growth=0.0, week_scales=tuple(chosen_scales)), bases=bases)
    return {"band": [lo, hi], "week_scales": chosen_scales, "weeks": table, "result": result}


def segment_coverage(
    origins: list[_Origin], model: str, cfg: ForecastConfig, spec: ProtocolSpec, dispersion: Any, *,
    bases: list | None = None,
) -> dict[str, Any]:
    """wSPL and 95 % coverage of ``model`` with the NB ``dispersion`` (a :class:`DispersionConfig`) per selection
    origin-segment, and their mean / range."""
    bases = bases if bases is not None else _dispersion_bases(origins, model, cfg, spec)
    rows = []
    for o, fc, step in bases:
        alpha = fc["dispersion"].to_numpy() * dispersion.scale * dispersion.horizon_multiplier(step)
        frame = _quantile_frame(fc, alpha)
        for seg in spec.segments:
            sc = score_days(frame, o.actual, o.train, o.cutoff, *seg)
            rows.append({"cutoff": str(o.cutoff.date()), "days": f"{seg[0]}-{seg[1]}", "wspl": sc["wspl"],
                         "coverage_95": sc["coverage_95"]})
    cov = [r["coverage_95"] for r in rows]
    return {"rows": rows, "wspl": float(np.mean([r["wspl"] for r in rows])), "coverage_95": float(np.mean(cov)),
            "coverage_95_min": float(min(cov)), "coverage_95_max": float(max(cov))}


def prefer_week_dispersion(weekly: dict[str, Any], scalar: dict[str, Any], band: tuple[float, float]) -> bool:
    """The per-week dispersion replaces the (scale, growth) one when it keeps every selection origin-segment inside
    ``band`` and the scalar one does not, or when both do and its wSPL is lower."""
    lo, hi = band

    def inside(r: dict[str, Any]) -> bool:
        return lo <= r["coverage_95_min"] and r["coverage_95_max"] <= hi

    if inside(weekly) != inside(scalar):
        return inside(weekly)
    return inside(weekly) and weekly["wspl"] < scalar["wspl"]


def select_dispersion(
    origins: list[_Origin], model: str, cfg: ForecastConfig, spec: ProtocolSpec, grid: SelectionGrid,
) -> list[dict[str, Any]]:
    """Score every (scale, growth) of the NB dispersion for ``model`` on the selection origins; the row marked
    ``chosen`` follows :class:`SelectionGrid`'s rule. The point forecast does not depend on the dispersion, so each
    origin's pipeline runs once (scale 1, growth 0) and the settings rescale its per-series dispersion."""
    from .distribution import nb_quantiles
    from .frames import QUANTILE_COLUMNS

    base_cfg = replace(cfg, dispersion=replace(cfg.dispersion, scale=1.0, growth=0.0))
    bases = []
    for o in origins:
        fc = _pipeline_forecast(o, model, base_cfg, spec, distribution=True)
        step = fc.groupby(ID, sort=False).cumcount().to_numpy() + 1
        bases.append((o, fc, step))
    rows: list[dict[str, Any]] = []
    for scale in grid.dispersion_scales:
        for growth in grid.dispersion_growths:
            per = []
            for o, fc, step in bases:
                alpha = fc["dispersion"].to_numpy() * scale * (1.0 + growth * (step - 1) / 28.0)
                q = nb_quantiles(fc["mean"].to_numpy(), alpha)
                frame = fc[[ID, TIME, "mean"]].copy()
                frame[list(QUANTILE_COLUMNS)] = q
                for seg in spec.segments:
                    sc = score_days(frame, o.actual, o.train, o.cutoff, *seg)
                    per.append((sc["wspl"], sc["coverage_95"]))
            cov = [c for _, c in per]
            lo, hi = grid.origin_coverage_band
            rows.append({"scale": scale, "growth": growth, "wspl": float(np.mean([w for w, _ in per])),
                         "coverage_95": float(np.mean(cov)), "coverage_95_min": float(min(cov)),
                         "coverage_95_max": float(max(cov)),
                         "origins_outside": int(sum(not lo <= c <= hi for c in cov)), "chosen": False})
    lo, hi = grid.coverage_band
    in_mean = [r for r in rows if lo <= r["coverage_95"] <= hi]
    in_both = [r for r in in_mean if r["origins_outside"] == 0]
    if in_both:
        pick = min(in_both, key=lambda r: r["wspl"])
    elif in_mean:
        pick = min(in_mean, key=lambda r: (r["origins_outside"], r["wspl"]))
    else:
        pick = min(rows, key=lambda r: abs(r["coverage_95"] - 95.0))
    pick["chosen"] = True
    return rows


def _pipeline_forecast(
    o: _Origin, model: str, cfg: ForecastConfig, spec: ProtocolSpec, *, distribution: bool = False,
) -> pd.DataFrame:
    """The full pipeline (NB quantiles included) on an origin, reusing the members' cached point forecasts; with
    ``distribution``, its ``unique_id, ds, mean, dispersion`` frame instead of quantiles."""
    from .demand import forecast_demand, forecast_distribution

    def cached(member, hist, horizon, *args):
        return o.grid.assign(**{member: o.members[member]})

    if distribution:
        return forecast_distribution(o.train, spec.horizon, None, model=model, config=cfg, runner=cached).frame
    return forecast_demand(o.train, spec.horizon, None, model=model, config=cfg, runner=cached)


def report(
    history: pd.DataFrame, spec: ProtocolSpec, models: dict[str, tuple[str, ForecastConfig]], *,
    cutoffs: list[pd.Timestamp] | None = None, cache_dir: str | Path | None = None, n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``models`` (label -> (spec, config)) and the baselines on the reporting origins, per origin and segment.

    Each model's config must come from a selection made before ``spec.select_before`` (its
    ``select_before`` is checked by the caller through :func:`check_reportable`)."""
    hist = validate_history(history)
    if cutoffs is None:
        _, cutoffs = protocol_origins(hist, spec)
    before = pd.Timestamp(spec.select_before)
    for c in cutoffs:
        if c + pd.Timedelta(days=1) < before:
            raise SelectionLeakError(
                f"reporting origin {c.date()} scores days before --select-before {before.date()}, which selection "
                "may have used", "select_before")
    cache = MemberCache(cache_dir) if cache_dir is not None else None
    rows: list[dict[str, Any]] = []
    for cutoff in cutoffs:
        specs = {label: model for label, (model, _) in models.items()}
        if len(set(specs.values())) != len(specs):
            raise ValueError("report: two labels name the same model spec")
        configs = {model: cfg for model, cfg in models.values()}
        train, actual, fcs = origin_forecasts(
            hist, cutoff, spec.horizon, list(configs), next(iter(configs.values())), configs=configs,
            carry_forward=spec.carry_forward, conformal_windows=spec.conformal_windows,
            baseline_intervals=spec.baseline_intervals, n_jobs=n_jobs, cache=cache, progress=progress)
        scored = {label: fcs[model] for label, model in specs.items()}
        scored.update({k: v for k, v in fcs.items() if k.startswith("baseline:")})
        for seg in spec.segments:
            row: dict[str, Any] = {"cutoff": str(cutoff.date()), "days": f"{seg[0]}-{seg[1]}", "scores": {}}
            for label, fc in scored.items():
                row["scores"][label] = score_days(fc, actual, train, cutoff, *seg)
            rows.append(row)
    return {"select_before": str(before.date()), "horizon": spec.horizon, "baseline_intervals": spec.baseline_intervals,
            "segments": [list(s) for s in spec.segments], "carry_forward": list(spec.carry_forward),
            "cutoffs": [str(c.date()) for c in cutoffs], "rows": rows,
            "summary": {f"{a}-{b}": summarize_segment(rows, f"{a}-{b}", list(models)) for a, b in spec.segments}}


def check_reportable(selection: DefaultSelection, select_before: pd.Timestamp) -> None:
    """A default chosen with data up to its own ``select_before`` may only be reported on origins after that date."""
    if pd.Timestamp(selection.select_before) > pd.Timestamp(select_before):
        raise SelectionLeakError(
            f"the default was selected on data before {selection.select_before}, after --select-before "
            f"{pd.Timestamp(select_before).date()}: reporting it there would be in-sample. Select again with "
            "this --select-before, or report from a later date", "select_before")


def summarize_segment(rows: list[dict[str, Any]], days: str, labels: list[str]) -> dict[str, Any]:
    """Means over origins for one segment, and the issue's targets for each model against the baselines."""
    seg = [r for r in rows if r["days"] == days]
    names = list(seg[0]["scores"]) if seg else []
    means = {n: {k: float(np.mean([r["scores"][n][k] for r in seg if r["scores"][n].get(k) is not None]))
                 for k in ("wrmsse", "wspl", "coverage_95", "rmsse", "spl")} for n in names}
    out: dict[str, Any] = {"means": means, "targets": {}}
    ets = means.get("baseline:ets")
    for label in labels:
        if ets is None or label not in means:
            continue
        m = means[label]
        per_origin = [100.0 * (r["scores"][label]["wrmsse"] / r["scores"]["baseline:ets"]["wrmsse"] - 1.0)
                      for r in seg]
        below = 100.0 * (1.0 - m["wrmsse"] / ets["wrmsse"])
        spl_below = 100.0 * (1.0 - m["wspl"] / ets["wspl"])
        out["targets"][label] = {
            "wrmsse_pct_below_ets": below,
            "worst_origin_pct_worse_than_ets": float(max(per_origin)),
            "wspl_pct_below_conformal_ets": spl_below,
            "coverage_95": m["coverage_95"],
            "met": {"wrmsse_5pct_below_ets": below >= 5.0,
                    "no_origin_1pct_worse": max(per_origin) <= 1.0,
                    "wspl_10pct_below_ets": spl_below >= 10.0,
                    "coverage_95_in_92_98": 92.0 <= m["coverage_95"] <= 98.0},
        }
    return out
