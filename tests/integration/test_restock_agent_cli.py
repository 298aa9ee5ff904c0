"""`shopfloor restock agent` as a real process: a scripted week of store days in, one JSON line out per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
DAY0 = date(2024, 3, 1)


def _agent(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "shopfloor", "restock", "agent", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)


def _ask(proc: subprocess.Popen, line: str) -> dict:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()  # the agent must answer before it sees the next line
    return json.loads(proc.stdout.readline())


def test_agent_process_answers_each_day_as_it_comes_and_survives_bad_lines():
    history = [{"date": (DAY0 - timedelta(days=d)).isoformat(), "sku": sku, "units": units}
               for d in range(1, 43) for sku, units in (("TEA", 6), ("MUG", 1))]
    catalog = {"TEA": {"category": "tea", "price": 4.99}, "MUG": {"category": "kitchen", "price": 9.5}}
    proc = _agent("--fill-rate", "0.95", "--lead-time", "3")
    try:
        first = _ask(proc, json.dumps({"date": DAY0.isoformat(), "sales": {"TEA": 6, "MUG": 1},
                                       "on_hand": {"TEA": 2, "MUG": 5}, "on_order": {}, "catalog": catalog,
                                       "history": history}))
        assert first["orders"]["TEA"] > 0  # 2 on the shelf for ~6 a day and a 3-day lead time
        pipeline = first["orders"]["TEA"]
        bad = _ask(proc, json.dumps({"date": (DAY0 + timedelta(days=1)).isoformat(), "sales": {"TEA": "six"}}))
        assert bad["error"]["field"] == "sales.TEA"
        garbled = _ask(proc, "not json")
        assert garbled["error"]["field"] == "line"
        answers = []
        for d in range(1, 6):  # TEA sold out every day (2 sold, none left): censored, so it keeps ordering
            answers.append(_ask(proc, json.dumps({
                "date": (DAY0 + timedelta(days=d)).isoformat(), "sales": {"TEA": 2, "MUG": 1},
                "on_hand": {"TEA": 0, "MUG": 4}, "on_order": {"TEA": pipeline}})))
        assert all("orders" in a for a in answers)
        assert sum(a["orders"].get("TEA", 0) for a in answers) > 0
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_agent_process_reads_returns_as_no_demand_and_says_so_on_stderr():
    history = [{"date": (DAY0 - timedelta(days=d)).isoformat(), "sku": "TEA", "units": 5 if d % 7 else -3}
               for d in range(1, 43)]
    proc = _agent("--fill-rate", "0.9", "--lead-time", "2")
    try:
        answers = [_ask(proc, json.dumps({"date": (DAY0 + timedelta(days=d)).isoformat(),
                                          "sales": {"TEA": -2 if d == 1 else 5}, "on_hand": {"TEA": 3},
                                          **({"history": history} if d == 0 else {})})) for d in range(3)]
        assert all("orders" in a for a in answers)
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert "6 history rows with negative units netted against their SKU's units that day, 1 negative day sales read as 0" in err


def test_agent_process_takes_goods_sold_by_weight_and_says_how_it_reads_them():
    history = [{"date": (DAY0 - timedelta(days=d)).isoformat(), "sku": "CHEESE", "units": 3.75}
               for d in range(1, 29)]
    proc = _agent("--fill-rate", "0.95", "--lead-time", "2")
    try:
        answers = [_ask(proc, json.dumps({"date": (DAY0 + timedelta(days=d)).isoformat(),
                                          "sales": {"CHEESE": 3.4}, "on_hand": {"CHEESE": 0.6},
                                          "on_order": {"CHEESE": 1.5}, **({"history": history} if d == 0 else {})}))
                   for d in range(3)]
        assert all(isinstance(a["orders"]["CHEESE"], int) and a["orders"]["CHEESE"] > 0 for a in answers)
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert "fractional units on 1 SKU(s)" in err and "Traceback" not in err


def test_agent_reads_its_policy_file_and_refuses_a_bad_one(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[defaults]\nfill_rate = 0.9\nlead_time_days = 2\npack_size = 6\n")
    proc = _agent("--policy", str(policy))
    try:
        out = _ask(proc, json.dumps({"date": DAY0.isoformat(), "sales": {"A": 9}, "on_hand": {"A": 0},
                                     "history": [{"date": "2024-02-28", "sku": "A", "units": 9}]}))
        assert out["orders"]["A"] % 6 == 0 and out["orders"]["A"] > 0
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nfill_rate = 1.5\n")
    run = subprocess.run([sys.executable, "-m", "shopfloor", "restock", "agent", "--policy", str(bad)],
                         input="", capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert run.returncode == 2 and "fill_rate" in run.stderr and "Traceback" not in run.stderr


def test_agent_takes_engine_knobs_from_the_policy_file_and_names_a_bad_one(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[defaults]\nfill_rate = 0.95\n[engine]\nallocation = "marginal"\nmonth_halflife = 365\n')
    proc = _agent("--policy", str(policy))
    try:
        out = _ask(proc, json.dumps({"date": DAY0.isoformat(), "sales": {"A": 9}, "on_hand": {"A": 0},
                                     "history": [{"date": "2024-02-28", "sku": "A", "units": 9}]}))
        assert out["orders"]["A"] > 0
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
        proc.stderr.close()
    bad = tmp_path / "bad.toml"
    bad.write_text('[engine]\nallocation = "greedy"\n')
    run = subprocess.run([sys.executable, "-m", "shopfloor", "restock", "agent", "--policy", str(bad)],
                         input="", capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert run.returncode == 2 and "engine: allocation" in run.stderr and "Traceback" not in run.stderr
