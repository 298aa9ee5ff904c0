"""Bad input to `shopfloor anomalies backtest`: each is a one-line error naming the option, the file and the row (or
label key and window), exit 2, no traceback and no warnings; a valid NAB file still scores as before."""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app

runner = CliRunner()
NAB = Path("/work/shared/data/nab_real")
KEY = "realTest/s.csv"
START = datetime(2024, 1, 1)


def _said(res) -> str:
    return " ".join(res.output.split())


def _run(series: Path, labels: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = runner.invoke(app, ["anomalies", "backtest", "--series", str(series), "--labels", str(labels),
                                  "--json"])
    return res, [str(w.message) for w in caught]


def _refused(series: Path, labels: Path, *needles: str) -> str:
    res, caught = _run(series, labels)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    said = _said(res)
    for needle in needles:
        assert needle in said, said
    assert "Traceback" not in res.output and "Warning" not in res.output, res.output
    assert caught == []
    assert len(res.output.strip().splitlines()) == 1, res.output
    return said


def _lines(n: int = 300) -> list[str]:
    return [f"{(START + timedelta(minutes=5 * i)):%Y-%m-%d %H:%M:%S},{10 + 3 * math.sin(i / 12):.4f}"
            for i in range(n)]


def _series(tmp_path: Path, lines: list[str] | None = None) -> Path:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n" + "\n".join(_lines() if lines is None else lines) + "\n")
    return path


def _labels(tmp_path: Path, windows=None) -> Path:
    path = tmp_path / "windows.json"
    if windows is None:
        windows = [["2024-01-01 20:00:00", "2024-01-01 21:00:00"]]
    path.write_text(json.dumps({KEY: windows}))
    return path


def _with_value(tmp_path: Path, row: int, value: str) -> Path:
    """A series whose file line ``row`` (header = line 1) holds ``value``."""
    lines = _lines()
    stamp = lines[row - 2].split(",")[0]
    lines[row - 2] = f"{stamp},{value}"
    return _series(tmp_path, lines)


@pytest.mark.parametrize("value", ["1e308", "inf", "-inf", "nan", "2e12"])
def test_a_non_finite_or_absurd_value_is_refused_naming_the_file_row_and_bound(tmp_path, value):
    series = _with_value(tmp_path, 120, value)
    said = _refused(series, _labels(tmp_path), "--series", str(series), "row 120", repr(value), "1e+12")
    assert said.startswith("error: --series")


@pytest.mark.parametrize("value", ["abc", "12abc", ""])
def test_a_value_that_is_not_a_number_is_refused_naming_the_file_and_row(tmp_path, value):
    series = _with_value(tmp_path, 57, value)
    _refused(series, _labels(tmp_path), "--series", str(series), f"row 57: value {value!r} is not a number")


def test_a_series_with_only_a_header_is_refused_as_empty(tmp_path):
    series = _series(tmp_path, [])
    series.write_text("timestamp,value\n")
    _refused(series, _labels(tmp_path), "--series", str(series), "no data rows")


def test_a_row_with_a_third_field_is_refused_naming_the_file_and_row(tmp_path):
    lines = _lines()
    lines[250] += ",7"  # file line 252
    series = _series(tmp_path, lines)
    said = _refused(series, _labels(tmp_path), "--series", str(series), "row 252", "3 field(s), expected 2")
    assert "tokenizing" not in said and "C error" not in said


def test_a_third_field_right_after_the_header_is_refused_naming_row_2(tmp_path):
    lines = _lines()
    lines[0] += ",7"
    series = _series(tmp_path, lines)
    said = _refused(series, _labels(tmp_path), "--series", str(series), "row 2", "3 field(s), expected 2")
    assert "invalid literal" not in said


def test_a_label_window_that_ends_before_it_starts_is_refused_naming_the_key_and_window(tmp_path):
    labels = _labels(tmp_path, [["2024-01-01 20:00:00", "2024-01-01 21:00:00"],
                                ["2024-01-01 23:00:00", "2024-01-01 22:00:00"]])
    _refused(_series(tmp_path), labels, "--labels", str(labels), repr(KEY), "window 2",
             "2024-01-01 23:00:00", "ends before it starts")


def test_a_bad_label_date_is_refused_naming_the_file_key_and_window(tmp_path):
    labels = _labels(tmp_path, [["2015-13-45", "2015-12-01 00:00:00"]])
    _refused(_series(tmp_path), labels, "--labels", str(labels), repr(KEY), "window 1",
             "start '2015-13-45' is not a date")


def test_a_valid_nab_file_still_scores_the_same_f1():
    series = NAB / "data" / "realTraffic" / "TravelTime_387.csv"
    labels = NAB / "labels" / "combined_windows.json"
    if not (series.is_file() and labels.is_file()):
        pytest.skip("NAB data not present")
    res, caught = _run(series, labels)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["series_scored"] == 1
    assert out["detectors"]["seasonal_robust"]["f1"] == 0.5882
    assert caught == []


def test_a_valid_small_series_scores_without_warnings(tmp_path):
    res, caught = _run(_series(tmp_path), _labels(tmp_path))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["detectors"]["seasonal_robust"]["windows"] == 1
    assert caught == []
