"""What the user's files or machine refuse (a path too long, an output that cannot be written, a file that is not
UTF-8, input nested too deeply) is said in one line with exit 2 by the console entry point, wherever a command did
not catch it itself; a bug still shows its traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from shopfloor.cli import _said


def _shopfloor(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def trace(tmp_path):
    idx = pd.date_range("2026-01-01", periods=1440, freq="min")
    counts = np.random.default_rng(0).poisson(50, len(idx))
    path = tmp_path / "trace.csv"
    pd.DataFrame({"minute": idx.strftime("%Y-%m-%d %H:%M:%S"), "count": counts}).to_csv(path, index=False)
    return path


def _one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    said = res.stderr.strip().splitlines()
    assert said and said[-1].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in said[-1], said[-1]


def test_an_output_path_the_system_refuses_is_one_line_naming_it(trace):
    # sysfs refuses new files even to root (CI runs as root, so a read-only folder would not do)
    res = _shopfloor("capacity", "backtest", "--trace", str(trace), "--schedule-out", "/sys/shopfloor-test.csv")
    _one_line_error(res, "Permission denied", "/sys/shopfloor-test.csv")


def test_a_file_name_too_long_for_the_system_is_one_line(tmp_path):
    res = _shopfloor("fulfillment", "import", str(tmp_path / ("a" * 300 + ".csv")))
    _one_line_error(res, "File name too long")


def test_a_calendar_that_is_not_utf8_text_is_one_line(tmp_path, trace):
    events = tmp_path / "events.csv"
    events.write_bytes("start,end,kind\n2026-01-01 10:00,2026-01-01 11:00,promo\n".encode("utf-16"))
    res = _shopfloor("capacity", "backtest", "--trace", str(trace), "--events", str(events))
    _one_line_error(res, "not UTF-8 text")


def test_the_restock_agent_answers_a_line_nested_too_deeply_and_goes_on():
    day = '{"date": "2024-02-01", "sales": {"S1": 3}, "on_hand": {"S1": 10}}'
    res = _shopfloor("restock", "agent", stdin="[" * 100_000 + "\n" + day + "\n")
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.strip().splitlines()
    assert '"field":"line"' in first and "nested too deeply" in first
    assert second.startswith('{"orders":')


def test_only_errors_about_files_and_machines_are_said_a_bug_is_not():
    assert _said(FileNotFoundError(2, "No such file or directory", "x.csv")) == "No such file or directory (x.csv)"
    assert _said(RecursionError()) is not None
    assert _said(OSError("no errno")) is None  # not a system refusal: left to show its traceback
    assert _said(KeyError("x")) is None
