"""Scoring anomaly detectors on NAB-format data (CSV ``timestamp,value`` + a JSON of labelled windows).

Definitions (applied identically to every detector):

* **Probation.** Alerts in the first ``probation`` fraction of a series' rows are ignored (NAB's convention: the
  detector is still learning). Windows are always counted.
* **Events.** Alerts whose row positions are at most ``collapse_gap`` rows apart are collapsed into one event, so
  a detector that fires on ten consecutive points is charged once, not ten times.
* **Precision** = events whose *first* alert lies inside a labelled window / all events.
* **Recall** = labelled windows holding at least one alert / all labelled windows.
* **F1** = 2PR / (P + R), micro-averaged: events and windows are summed over all series first.
* **Delay** = for each detected window, the time from the window's start to its first alert (hours, and as a
  fraction of the window's length).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .anomaly import StreamingDetector

Window = tuple[datetime, datetime]


def _utc(value: str | datetime | pd.Timestamp) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()


def load_series(path: str | Path) -> tuple[list[datetime], np.ndarray]:
    """Read a NAB CSV. Raises ``ValueError`` naming the problem if the columns are not ``timestamp,value``."""
    frame = pd.read_csv(path)
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected 'timestamp,value'")
    stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    if stamps.isna().any():
        bad = int(stamps.isna().idxmax())
        raise ValueError(f"{path}: unparseable timestamp on data row {bad + 1}")
    frame = frame.assign(timestamp=stamps).sort_values("timestamp", kind="stable")
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    return [ts.to_pydatetime() for ts in frame["timestamp"]], values


def load_windows(path: str | Path) -> dict[str, list[Window]]:
    """Read NAB ``combined_windows.json``: {"realX/file.csv": [[start, end], ...]}."""
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); expected NAB's combined_windows.json "
                         '{"realX/file.csv": [["start", "end"], ...]}') from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by relative series path")
    windows: dict[str, list[Window]] = {}
    for key, spans in raw.items():
        if not isinstance(spans, list):
            raise ValueError(f"{path}: windows for {key!r} must be a list of [start, end] pairs")
        windows[key] = []
        for span in spans:
            if not (isinstance(span, (list, tuple)) and len(span) == 2):
                raise ValueError(f"{path}: window {span!r} for {key!r} is not a [start, end] pair")
            windows[key].append((_utc(span[0]), _utc(span[1])))
    return windows


@dataclass
class SeriesScore:
    """Counts for one series and one detector."""

    series: str
    alerts: int = 0
    events: int = 0
    true_events: int = 0
    windows: int = 0
    detected_windows: int = 0
    delays_h: list[float] = field(default_factory=list)
    delays_frac: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "series": self.series,
            "alerts": self.alerts,
            "events": self.events,
            "true_events": self.true_events,
            "windows": self.windows,
            "detected_windows": self.detected_windows,
            "delays_h": [round(d, 3) for d in self.delays_h],
        }


def collapse_events(alert_rows: Sequence[int], collapse_gap: int) -> list[list[int]]:
    """Group sorted alert row positions into events (neighbours at most ``collapse_gap`` rows apart)."""
    events: list[list[int]] = []
    for row in sorted(alert_rows):
        if events and row - events[-1][-1] <= collapse_gap:
            events[-1].append(row)
        else:
            events.append([row])
    return events


def score_series(
    series: str,
    timestamps: Sequence[datetime],
    alert_rows: Iterable[int],
    windows: Sequence[Window],
    *,
    probation: float = 0.15,
    collapse_gap: int = 12,
) -> SeriesScore:
    """Score one detector's alerts (row positions into ``timestamps``) against labelled windows."""
    first_scored = int(len(timestamps) * probation)
    rows = sorted(r for r in set(alert_rows) if r >= first_scored)
    score = SeriesScore(series=series, alerts=len(rows), windows=len(windows))

    def inside(ts: datetime) -> bool:
        return any(start <= ts <= end for start, end in windows)

    events = collapse_events(rows, collapse_gap)
    score.events = len(events)
    score.true_events = sum(1 for ev in events if inside(timestamps[ev[0]]))
    for start, end in windows:
        hits = [timestamps[r] for r in rows if start <= timestamps[r] <= end]
        if hits:
            score.detected_windows += 1
            delay = (hits[0] - start).total_seconds()
            score.delays_h.append(delay / 3600.0)
            length = (end - start).total_seconds()
            score.delays_frac.append(delay / length if length > 0 else 0.0)
    return score


def summarise(scores: Sequence[SeriesScore]) -> dict:
    """Micro-averaged precision, recall, F1 and delays over many series."""
    events = sum(s.events for s in scores)
    true_events = sum(s.true_events for s in scores)
    windows = sum(s.windows for s in scores)
    detected = sum(s.detected_windows for s in scores)
    precision = true_events / events if events else 0.0
    recall = detected / windows if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    delays = [d for s in scores for d in s.delays_h]
    fracs = [d for s in scores for d in s.delays_frac]
    return {
        "series": len(scores),
        "alerts": sum(s.alerts for s in scores),
        "events": events,
        "true_events": true_events,
        "windows": windows,
        "detected_windows": detected,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "mean_delay_h": round(statistics.fmean(delays), 3) if delays else None,
        "median_delay_h": round(statistics.median(delays), 3) if delays else None,
        "median_delay_window_frac": round(statistics.median(fracs), 3) if fracs else None,
    }


DetectorFactory = Callable[[str], StreamingDetector]


def run_detector(detector: StreamingDetector, timestamps: Sequence[datetime], values: np.ndarray) -> list[int]:
    """Row positions at which the detector alerted (it sees each row once, in time order)."""
    rows = []
    for i, (ts, value) in enumerate(zip(timestamps, values)):
        if detector.update(ts, value) is not None:
            rows.append(i)
    return rows


def backtest(
    series: dict[str, Path],
    windows: dict[str, list[Window]],
    detectors: dict[str, DetectorFactory],
    *,
    probation: float = 0.15,
    collapse_gap: int = 12,
    on_series_done: Callable[[str], None] | None = None,
) -> dict:
    """Score every detector on every series; returns per-detector summaries and per-series counts."""
    per_detector: dict[str, list[SeriesScore]] = {name: [] for name in detectors}
    for key, path in series.items():
        timestamps, values = load_series(path)
        for name, factory in detectors.items():
            rows = run_detector(factory(key), timestamps, values)
            per_detector[name].append(
                score_series(
                    key, timestamps, rows, windows.get(key, []), probation=probation, collapse_gap=collapse_gap
                )
            )
        if on_series_done:
            on_series_done(key)
    return {
        "summary": {name: summarise(scores) for name, scores in per_detector.items()},
        "per_series": {name: [s.as_dict() for s in scores] for name, scores in per_detector.items()},
    }
