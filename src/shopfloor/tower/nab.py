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

import csv
import json
import statistics
import warnings
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


MAX_ABS_VALUE = 1e12
"""Largest magnitude a series value may have; anything beyond is a unit mistake or a corrupt file (and squares to
infinity in the detectors' variance)."""


def load_series(path: str | Path) -> tuple[list[datetime], np.ndarray]:
    """Read a NAB CSV (``timestamp,value``). Raises ``ValueError`` starting with the file name and naming the row
    (the file's line number, header = 1) and field when the header lacks a column, a row has the wrong number of
    fields, a timestamp does not parse, a value is not a finite number within +-``MAX_ABS_VALUE``, or there are no
    data rows."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(_csv_rows(fh))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text CSV; expected 'timestamp,value'") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc}); expected 'timestamp,value'") from None
    if not rows:
        raise ValueError(f"{path}: empty file; expected a 'timestamp,value' header and data rows")
    header = rows[0][1]
    missing = {"timestamp", "value"} - set(header)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected 'timestamp,value'")
    data = rows[1:]
    if not data:
        raise ValueError(f"{path}: no data rows (only a header); expected 'timestamp,value' rows")
    for lineno, row in data:
        if len(row) != len(header):
            raise ValueError(f"{path} row {lineno}: {len(row)} field(s), expected {len(header)} "
                             f"({','.join(header)})")
    frame = pd.DataFrame([row for _, row in data], columns=header)
    lines = [lineno for lineno, _ in data]
    with warnings.catch_warnings():  # "could not infer format" for mixed formats; a bad stamp is refused below
        warnings.simplefilter("ignore")
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    if stamps.isna().any():
        bad = int(stamps.isna().to_numpy().argmax())
        raise ValueError(f"{path} row {lines[bad]}: timestamp {frame['timestamp'].iloc[bad]!r} is not a date")
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    for i in np.flatnonzero(~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > MAX_ABS_VALUE)):
        raw = frame["value"].iloc[i]
        if np.isnan(values[i]) and raw.strip().lower() not in ("nan", "-nan", "+nan"):
            raise ValueError(f"{path} row {lines[i]}: value {raw!r} is not a number")
        raise ValueError(f"{path} row {lines[i]}: value {raw!r} is not a finite number within "
                         f"+-{MAX_ABS_VALUE:g}")
    order = np.argsort(stamps.to_numpy(), kind="stable")
    return [stamps.iloc[i].to_pydatetime() for i in order], values[order]


def _csv_rows(fh) -> Iterable[tuple[int, list[str]]]:
    """Non-blank CSV rows with the line number each starts on."""
    reader = csv.reader(fh)
    line = 1
    for row in reader:
        if row:  # a blank line is no row (as pandas reads it)
            yield line, row
        line = reader.line_num + 1


def _window_end(path, key: str, number: int, span, which: int) -> datetime:
    value = span[which]
    name = ("start", "end")[which]
    where = f"{path}: {key!r} window {number} {span!r}"
    if not isinstance(value, str):
        raise ValueError(f"{where}: {name} {value!r} is not a date string")
    try:
        ts = _utc(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{where}: {name} {value!r} is not a date") from None
    if pd.isna(ts):
        raise ValueError(f"{where}: {name} {value!r} is not a date")
    return ts


def load_windows(path: str | Path) -> dict[str, list[Window]]:
    """Read NAB ``combined_windows.json``: {"realX/file.csv": [[start, end], ...]}. Raises ``ValueError`` starting
    with the file name and naming the key and window when a window is malformed, a date does not parse, or a window
    ends before it starts."""
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); expected NAB's combined_windows.json "
                         '{"realX/file.csv": [["start", "end"], ...]}') from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected NAB's combined_windows.json") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by relative series path")
    windows: dict[str, list[Window]] = {}
    for key, spans in raw.items():
        if not isinstance(spans, list):
            raise ValueError(f"{path}: windows for {key!r} must be a list of [start, end] pairs")
        windows[key] = []
        for number, span in enumerate(spans, start=1):
            if not (isinstance(span, (list, tuple)) and len(span) == 2):
                raise ValueError(f"{path}: {key!r} window {number} {span!r} is not a [start, end] pair")
            start, end = _window_end(path, key, number, span, 0), _window_end(path, key, number, span, 1)
            if end < start:
                raise ValueError(f"{path}: {key!r} window {number} {span!r} ends before it starts")
            windows[key].append((start, end))
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
