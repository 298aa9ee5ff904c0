"""`shopfloor anomalies backtest` and `shopfloor rules check|run` end to end on small files."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app

runner = CliRunner()


def write_nab(tmp_path):
    data = tmp_path / "data" / "realTest"
    data.mkdir(parents=True)
    t0 = datetime(2026, 1, 1)
    lines = ["timestamp,value"]
    for k in range(2000):
        v = 50 + 10 * math.sin(2 * math.pi * k / 288) + (k * 7919 % 13) / 13.0
        if k == 1500:
            v += 80
        lines.append(f"{(t0 + timedelta(minutes=5 * k)):%Y-%m-%d %H:%M:%S},{v:.3f}")
    (data / "s1.csv").write_text("\n".join(lines) + "\n")
    start, end = t0 + timedelta(minutes=5 * 1480), t0 + timedelta(minutes=5 * 1530)
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({
        "realTest/s1.csv": [[f"{start:%Y-%m-%d %H:%M:%S}.000000", f"{end:%Y-%m-%d %H:%M:%S}.000000"]],
        "realTest/missing.csv": [],
    }))
    return tmp_path / "data", labels


def test_backtest_scores_our_detector_and_the_baseline_in_one_run(tmp_path):
    data, labels = write_nab(tmp_path)
    res = runner.invoke(app, ["anomalies", "backtest", "--series", str(data), "--labels", str(labels), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["series_scored"] == 1 and out["series_skipped"] == ["realTest/missing.csv"]
    ours = out["detectors"]["seasonal_robust"]
    assert ours["detected_windows"] == 1 and ours["precision"] == 1.0
    assert set(out["detectors"]) == {"seasonal_robust", "rolling_zscore"}
    assert "f1_ratio_vs_baseline" in out and "precision" in out["definitions"]


def test_backtest_accepts_a_single_file(tmp_path):
    data, labels = write_nab(tmp_path)
    res = runner.invoke(app, ["anomalies", "backtest", "--series", str(data / "realTest" / "s1.csv"),
                              "--labels", str(labels), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["series_scored"] == 1


def test_backtest_bad_input_is_a_one_line_error_naming_the_option(tmp_path):
    res = runner.invoke(app, ["anomalies", "backtest", "--series", str(tmp_path), "--labels", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "--labels" in res.output and "Traceback" not in res.output


def test_rules_check_accepts_the_example_and_names_problems(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"
    ok = runner.invoke(app, ["rules", "check", str(example), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    when: trafic_rpm > 3\n    actions: [{type: alert}]\n")
    res = runner.invoke(app, ["rules", "check", str(bad), "--json"])
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert err["rule"] == "x" and err["field"] == "when" and "unknown signal 'trafic_rpm'" in err["error"]


@pytest.fixture
def store_url(tmp_path, monkeypatch) -> str:
    """A migrated SQLite store that the CLI under test reads from the environment."""
    from shopfloor.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    monkeypatch.setenv("SHOPFLOOR_DATA_DIR", str(tmp_path / "var"))
    return url


def test_rules_run_dry_run_logs_to_the_database_and_changes_nothing(tmp_path, store_url):
    from shopfloor.store.tower import TowerRepository
    from shopfloor.store.engine import make_engine

    url = store_url
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "cover"\nwhen = "stock_cover_days_SKU_1 < 1"\n'
                     '[[rules.actions]]\ntype = "suppress_promotion"\nsku = "SKU-1"\nalternatives = ["SKU-2"]\n')
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps({"stock_cover_days_SKU_1": 0.2}))
    res = runner.invoke(app, ["rules", "run", "--file", str(rules), "--signals", str(signals), "--dry-run",
                              "--once", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rules"][0]["actions"][0]["status"] == "dry_run"
    repo = TowerRepository(make_engine(url))
    now = datetime.now().astimezone()
    assert repo.active_suppressions(now) == []
    [logged] = repo.list_actions()
    assert logged["status"] == "dry_run" and logged["signal_values"] == {"stock_cover_days_SKU_1": 0.2}
    res = runner.invoke(app, ["rules", "run", "--file", str(rules), "--signals", str(signals), "--json"])
    assert json.loads(res.stdout)["rules"][0]["actions"][0]["status"] == "applied"
    assert repo.active_suppressions(now)[0]["alternatives"] == ["SKU-2"]
    repo.engine.dispose()


def test_rules_run_every_picks_up_an_edit_and_keeps_the_rules_through_a_bad_one(tmp_path, monkeypatch, store_url):
    import os

    from shopfloor.cli import rules_cmd

    rules = tmp_path / "rules.yaml"
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps({"traffic_rpm": 50}))

    def write(when: str, version: int) -> None:
        rules.write_text(f"rules:\n  - name: watch\n    when: {when}\n    actions: [{{type: alert, channel: log}}]\n")
        os.utime(rules, ns=(version * 10**9, version * 10**9))

    write("traffic_rpm > 100", 1_000)
    edits = iter([lambda: write("trafic_rpm > 10", 2_000),  # does not validate: the rule in force stays
                  lambda: write("traffic_rpm > 10", 3_000)])

    def next_evaluation(_seconds):  # instead of sleeping: edit the file, and stop after the last edit
        edit = next(edits, None)
        if edit is None:
            raise KeyboardInterrupt
        edit()

    monkeypatch.setattr(rules_cmd.time, "sleep", next_evaluation)
    res = runner.invoke(app, ["rules", "run", "--file", str(rules), "--signals", str(signals), "--every", "1",
                              "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    decoder, text, fired = json.JSONDecoder(), res.stdout, []
    at = text.find("{")
    while at != -1:  # one JSON object per evaluation
        doc, end = decoder.raw_decode(text, at)
        fired.append(doc["rules"][0]["fired"])
        at = text.find("{", end)
    assert fired == [False, False, True]  # 50 > 100 no; the broken edit changed nothing; 50 > 10 yes
    said = " ".join(res.stderr.split())
    assert "rule 'watch'.when: unknown signal 'trafic_rpm'" in said and "loaded 1 rule(s)" in said


def _run_one_action(tmp_path, action_yaml: str, signals: dict) -> dict:
    """``shopfloor rules run --once`` with one rule (``traffic_rpm > 600``) and one action; the action's result,
    which must have been applied."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - name: r\n    when: traffic_rpm > 600\n    actions:\n      - {action_yaml}\n")
    path = tmp_path / "signals.json"
    path.write_text(json.dumps(signals))
    res = runner.invoke(app, ["rules", "run", "--file", str(rules), "--signals", str(path), "--once", "--json"])
    assert res.exit_code == 0, res.output
    [action] = json.loads(res.stdout)["rules"][0]["actions"]
    assert action["status"] == "applied", action
    return action


def test_a_scale_rule_works_out_of_the_box_and_emits_what_the_predictive_planner_asks_for(tmp_path, store_url):
    from datetime import timezone

    from shopfloor.store.capacity import record_request_batch
    from shopfloor.store.engine import make_engine

    engine = make_engine(store_url)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    # An hour at 40,000 requests a minute: at the default 75 requests/s per replica the planner asks for 9+.
    record_request_batch(engine, [{"minute": now - timedelta(minutes=k), "route": "/v1/products/{sku}",
                                   "count": 40000} for k in range(1, 61)])
    engine.dispose()
    action = _run_one_action(tmp_path, "type: scale\n        max_replicas: 40", {"traffic_rpm": 40000})
    emitted = json.loads(Path(action["after"]["emitted"]).read_text())["plan"]
    assert emitted["source"] == "predictive_planner"
    assert emitted["replicas"] == emitted["planner_now"]["desired_replicas"] >= 9
    assert emitted["slot_plan"]["slots"]


def test_a_mail_alert_without_a_mail_server_lands_in_the_stores_maildir(tmp_path, store_url):
    _run_one_action(tmp_path, "type: alert\n        channel: mail\n        to: ops@example.com\n"
                    "        subject: feed stale", {"traffic_rpm": 900})
    [mail] = (tmp_path / "var" / "maildir" / "new").iterdir()  # SHOPFLOOR_DATA_DIR/maildir, as order mail
    text = mail.read_text()
    assert "To: ops@example.com" in text and "Subject: feed stale" in text and "traffic_rpm=900" in text


@pytest.mark.parametrize("given, said", [
    ({"stock_cover_days_SKU_1": "abc"}, 'stock_cover_days_SKU_1 must be a finite number, got "abc"'),
    ({"stock_cover_days_SKU_1": None}, "stock_cover_days_SKU_1 must be a finite number, got null"),  # was read as 0
    ({"stock_cover_days_SKU_1": True}, "must be a finite number, got true"),
    ({"stok_cover_days_SKU_1": 0.2}, "unknown signal 'stok_cover_days_SKU_1'"),
])
def test_rules_run_refuses_signal_values_that_are_not_numbers_and_names_it_does_not_know(tmp_path, store_url,
                                                                                       given, said):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: low\n    when: stock_cover_days_SKU_1 < 1\n"
                     "    actions: [{type: alert, channel: log, message: low}]\n")
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps(given))
    res = runner.invoke(app, ["rules", "run", "--file", str(rules), "--signals", str(signals), "--dry-run", "--once"])
    assert res.exit_code == 2 and said in " ".join(res.output.split()), res.output
