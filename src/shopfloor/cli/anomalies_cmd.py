"""`shopfloor anomalies` commands: score the anomaly detector on NAB-format data."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .output import console, fail, print_json

anomalies_app = typer.Typer(help="Anomaly detection: backtests on labelled series.", no_args_is_help=True)


def _resolve_series(series: Path, windows: dict, labels: Path) -> tuple[dict[str, Path], list[str]]:
    """Map label keys ("realX/file.csv") to files. A directory scores every labelled series found under it
    (as DIR/realX/file.csv, DIR/data/realX/file.csv or DIR/file.csv)."""
    if series.is_file():
        name = series.name
        keys = [k for k in windows if k == name or k.endswith("/" + name)]
        if not keys:
            fail(f"--series: {series} has no entry in --labels {labels} (keys look like 'realTweets/x.csv')")
        return {keys[0]: series}, []
    if not series.is_dir():
        fail(f"--series: {series} is neither a file nor a directory")
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for key in sorted(windows):
        for candidate in (series / key, series / "data" / key, series / Path(key).name):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            skipped.append(key)
    if not found:
        fail(f"--series: no file under {series} matches a key of --labels {labels}")
    return found, skipped


def backtest_cmd(
    series: Path = typer.Option(
        ..., "--series", help="A NAB CSV (timestamp,value; values finite, abs <= 1e12) or a directory of them."
    ),
    labels: Path = typer.Option(..., "--labels", help="NAB windows JSON (e.g. labels/combined_windows.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    threshold: float = typer.Option(6.0, "--threshold", min=0.1, help="Seasonal detector: minimum robust score."),
    baseline_window: int = typer.Option(100, "--baseline-window", min=2, help="Rolling z-score window (points)."),
    baseline_threshold: float = typer.Option(3.0, "--baseline-threshold", min=0.1, help="Rolling z-score |z| bar."),
    probation: float = typer.Option(0.15, "--probation", min=0.0, max=0.9, help="Leading fraction not scored."),
    collapse_gap: int = typer.Option(12, "--collapse-gap", min=0, help="Alerts this many rows apart form 1 event."),
    per_series: bool = typer.Option(False, "--per-series", help="Include per-series counts in the output."),
) -> None:
    """Score the seasonal detector and a rolling z-score baseline in the same run (precision, recall, F1, delay)."""
    from rich.progress import Progress

    from ..tower.anomaly import RollingZScoreDetector, SeasonalRobustDetector
    from ..tower.nab import backtest, load_windows

    if not labels.is_file():
        fail(f"--labels: {labels} is not a file")
    try:
        windows = load_windows(labels)
    except (ValueError, OSError) as exc:
        fail(f"--labels {exc}")
    files, skipped = _resolve_series(series, windows, labels)
    detectors = {
        "seasonal_robust": lambda key: SeasonalRobustDetector(key, threshold=threshold),
        "rolling_zscore": lambda key: RollingZScoreDetector(
            key, window=baseline_window, threshold=baseline_threshold
        ),
    }
    started = time.perf_counter()
    try:
        if as_json:
            result = backtest(files, windows, detectors, probation=probation, collapse_gap=collapse_gap)
        else:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("scoring series", total=len(files))
                result = backtest(
                    files, windows, detectors, probation=probation, collapse_gap=collapse_gap,
                    on_series_done=lambda _k: progress.advance(task),
                )
    except (ValueError, OSError) as exc:  # load_series' messages start with the file and name the row and field
        fail(f"--series {exc}")
    ours, base = result["summary"]["seasonal_robust"], result["summary"]["rolling_zscore"]
    out = {
        "series_scored": len(files),
        "series_skipped": skipped,
        "definitions": {
            "precision": "events whose first alert is inside a labelled window / all events "
            f"(alerts <= {collapse_gap} rows apart collapse into one event)",
            "recall": "labelled windows with at least one alert inside / all windows",
            "f1": "2PR/(P+R), micro-averaged over all series",
            "delay": "window start -> first alert inside it",
            "probation": f"alerts in the first {probation:.0%} of each series are not scored",
        },
        "detectors": result["summary"],
        "f1_ratio_vs_baseline": round(ours["f1"] / base["f1"], 3) if base["f1"] else None,
        "params": {
            "threshold": threshold,
            "baseline_window": baseline_window,
            "baseline_threshold": baseline_threshold,
        },
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if per_series:
        out["per_series"] = result["per_series"]
    if as_json:
        print_json(out)
        return
    from rich.table import Table

    table = Table(title=f"NAB backtest: {len(files)} series ({len(skipped)} labelled series not found)")
    for col in ("detector", "events", "precision", "recall", "F1", "median delay h"):
        table.add_column(col)
    for name, s in result["summary"].items():
        table.add_row(name, str(s["events"]), f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}",
                      str(s["median_delay_h"]))
    console.print(table)
    console.print(f"F1 ratio (seasonal_robust / rolling_zscore): {out['f1_ratio_vs_baseline']}  "
                  f"[{out['elapsed_s']} s]")


def register(app: typer.Typer) -> None:
    """Attach `shopfloor anomalies ...` to the root app."""
    anomalies_app.command("backtest")(backtest_cmd)
    app.add_typer(anomalies_app, name="anomalies")
