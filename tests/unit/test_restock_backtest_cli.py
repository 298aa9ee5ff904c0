"""`shopfloor restock backtest`: history files it cannot use are named with their line and column, and the result
table reads whole in an 80-column terminal."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

import shopfloor.cli.restock_cmd as restock_cmd
import shopfloor.planning.restock_backtest as restock_backtest
from shopfloor.cli.main import app

runner = CliRunner()


def _said(result) -> str:
    return " ".join(result.output.split())


def test_a_history_file_with_only_a_header_is_said_to_have_no_rows(tmp_path):
    path = tmp_path / "hdronly.csv"
    path.write_text("unique_id,ds,y\n")
    r = runner.invoke(app, ["restock", "backtest", "--history", str(path)])
    assert r.exit_code == 2
    assert "--history: hdronly.csv: the file has no rows (only a header)" in _said(r)
    assert "NaT" not in r.output


@pytest.mark.parametrize("bad_row, message", [
    ("a,not-a-date,1", "line 3: ds 'not-a-date' is not a date"),
    ("a,2020-01-02,-7", "line 3: y '-7' is not a demand"),
    ("a,2020-01-02,inf", "line 3: y 'inf' is not a demand"),
    ("a,2020-01-02,", "line 3: y is empty"),
])
def test_a_bad_history_value_is_named_by_line_and_column(tmp_path, bad_row, message):
    path = tmp_path / "h.csv"
    path.write_text(f"unique_id,ds,y\na,2020-01-01,1\n{bad_row}\na,2020-01-03,2\n")
    r = runner.invoke(app, ["restock", "backtest", "--history", str(path)])
    assert r.exit_code == 2, r.output
    assert f"--history: h.csv: {message}" in _said(r)


def test_a_corrupt_gzip_history_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "h.csv.gz"
    path.write_bytes(b"\x00\x01\x02garbage")
    r = runner.invoke(app, ["restock", "backtest", "--history", str(path)])
    assert r.exit_code == 2 and "h.csv.gz: cannot read it as CSV" in _said(r)
    assert r.exception is None or isinstance(r.exception, SystemExit)


def _equal(avg, reachable=True, matched=True, fill=0.7):
    return {"reachable": reachable, "matched": matched, "avg_on_hand": avg, "fill_rate": fill,
            "fill_range": [0.1614, 0.5043]}


def _target(target, reachable_sales=False):
    return {"target": target, "ours": {"fill_rate": 0.6888, "avg_on_hand": 7.27},
            "baseline_at_target_z": {"fill_rate": 0.6542, "avg_on_hand": 6.75},
            "baseline_at_equal_fill": _equal(9.61, matched=target < 0.95, fill=0.6901),
            "inventory_ratio_vs_baseline": 0.757,
            "sales_baseline_at_equal_fill": _equal(None, reachable=reachable_sales),
            "inventory_ratio_vs_sales_baseline": None}


def test_the_backtest_table_never_splits_a_word_at_80_columns(tmp_path, monkeypatch):
    result = {"data": {"series": 3, "scored_days": 28}, "runtime_s": 2.8,
              "targets": [_target(0.90), _target(0.95), _target(0.98)]}
    monkeypatch.setattr(restock_backtest, "run_restock_backtest", lambda panel, **kw: result)
    monkeypatch.setattr(restock_cmd, "console", Console(width=80, color_system=None))
    path = tmp_path / "h.csv"
    path.write_text("unique_id,ds,y\na,2020-01-01,1\n")
    r = runner.invoke(app, ["restock", "backtest", "--history", str(path)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    words = set(r.output.split())
    for label in ("agent fill rate", "agent on-hand", "baseline on-hand @ agent fill",
                  "sales-fed baseline on-hand @ agent fill", "ratio vs sales-fed"):
        assert set(label.split()) <= words, label
    table = [line for line in lines if "unreachable" in line]
    assert table and all(line.split().count("unreachable") == 3 for line in table[:1])
    assert "9.61*" in words  # no equal fill at 0.95 and 0.98: marked, and said below
    assert "nearest is 0.6901" in _said(r)
