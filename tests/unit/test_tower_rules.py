"""The rules language: what parses, what is refused (and where), and how rules files are validated."""

from __future__ import annotations

import pytest

from shopfloor.tower.rules import (
    RuleError,
    SignalCatalog,
    SignalMissing,
    load_rules_file,
    parse_condition,
    parse_duration,
    parse_rules,
)

CATALOG = SignalCatalog()


def test_a_forecast_over_baseline_condition_parses_and_evaluates():
    cond = parse_condition("traffic_forecast_60m > 1.3 * traffic_baseline", CATALOG)
    assert cond.names == {"traffic_forecast_60m", "traffic_baseline"}
    assert cond.evaluate({"traffic_forecast_60m": 140, "traffic_baseline": 100}) is True
    assert cond.evaluate({"traffic_forecast_60m": 120, "traffic_baseline": 100}) is False


def test_boolean_logic_chained_comparisons_functions_and_strings_work():
    cond = parse_condition(
        '(breaker_state_stripe == "open" or not payment_success_rate_stripe >= 0.9) '
        "and 0 < max(checkout_latency_ms, page_load_ms) / 1000 <= abs(-5)",
        CATALOG,
    )
    values = {"breaker_state_stripe": "closed", "payment_success_rate_stripe": 0.8,
              "checkout_latency_ms": 900, "page_load_ms": 2500}
    assert cond.evaluate(values) is True
    assert cond.evaluate({**values, "payment_success_rate_stripe": 0.95}) is False


def test_per_entity_signals_match_their_patterns():
    assert parse_condition("feed_age_s_wh_berlin > 600", CATALOG).names == {"feed_age_s_wh_berlin"}


def test_a_syntax_error_reports_its_column():
    with pytest.raises(RuleError) as err:
        parse_condition("traffic_rpm > > 3", CATALOG)
    assert "syntax error" in str(err.value)
    assert err.value.position == 15


def test_an_unknown_signal_is_named_with_a_suggestion():
    with pytest.raises(RuleError) as err:
        parse_condition("traffic_rpn > 3", CATALOG)
    assert "unknown signal 'traffic_rpn'" in str(err.value)
    assert "traffic_rpm" in str(err.value)
    assert err.value.position == 1


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("__import__('os').system('true')", "not allowed"),
        ("traffic_rpm.real > 3", "attribute access"),
        ("eval('1') > 0", "call to 'eval' is not allowed"),
        ("open('/etc/passwd')", "call to 'open' is not allowed"),
        ("(lambda: 1)() > 0", "not allowed"),
        ("[traffic_rpm][0] > 1", "not allowed"),
        ("traffic_rpm ** 2 > 1", "operator Pow"),
        ("traffic_rpm in (1, 2)", "comparison In"),
        ("max(*traffic_rpm) > 1", "plain arguments"),
        ("traffic_rpm if 1 else 2", "not allowed"),
        ("max > 1", "is a function"),
    ],
)
def test_forbidden_constructs_are_refused(text, fragment):
    with pytest.raises(RuleError) as err:
        parse_condition(text, CATALOG)
    assert fragment in str(err.value)


def test_a_missing_value_is_reported_not_treated_as_false():
    cond = parse_condition("traffic_rpm > 3", CATALOG)
    with pytest.raises(SignalMissing):
        cond.evaluate({"traffic_rpm": None})


def test_durations_accept_numbers_and_units():
    assert parse_duration(90) == 90
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    assert parse_duration("1d") == 86400
    with pytest.raises(RuleError):
        parse_duration("soon")


def _doc(**overrides):
    rule = {"name": "r", "when": "traffic_rpm > 3", "actions": [{"type": "alert", "channel": "log"}]}
    rule.update(overrides)
    return {"rules": [rule]}


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"rules": []}, "missing field 'rules'"),
        ({"rules": [{"when": "traffic_rpm > 1", "actions": [{"type": "alert"}]}]}, "missing field 'name'"),
        (_doc(when=None), "condition is empty"),
        ({"rules": [{"name": "r", "actions": [{"type": "alert"}]}]}, "missing field 'when'"),
        (_doc(actions=[]), "missing field 'actions'"),
        (_doc(actions=[{"type": "teleport"}]), "unknown action type 'teleport'"),
        (_doc(actions=[{"type": "suppress_promotion"}]), "missing field(s) sku"),
        (_doc(actions=[{"type": "degrade_promises", "warehouse": "w", "colour": 1}]), "unknown field(s) colour"),
        (_doc(actions=[{"type": "alert", "channel": "webhook"}]), "missing field 'url'"),
        (_doc(actions=[{"type": "scale", "mode": "webhook"}]), "missing field 'webhook'"),
        (_doc(actions=[{"type": "warm_caches", "urls": "http://x"}]), "must be a list of strings"),
        (_doc(cooldown="later"), "duration"),
        (_doc(priority=1), "unknown field(s): priority"),
    ],
)
def test_rules_documents_are_validated_with_clear_messages(doc, fragment):
    with pytest.raises(RuleError) as err:
        parse_rules(doc)
    assert fragment in str(err.value)


def test_errors_in_conditions_name_the_rule_field_and_column():
    with pytest.raises(RuleError) as err:
        parse_rules(_doc(when="traffic_rpm >"))
    assert err.value.rule == "r" and err.value.field == "when" and err.value.position is not None
    assert str(err.value).startswith("rule 'r'.when: syntax error")


def test_yaml_and_toml_files_load_to_the_same_rules(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "defaults: {cooldown: 5m}\nrules:\n  - name: surge\n    when: traffic_rpm > 2 * traffic_baseline\n"
        "    actions:\n      - {type: scale, max_replicas: 8}\n      - {type: alert, channel: log, cooldown: 1h}\n"
    )
    (tmp_path / "r.toml").write_text(
        '[defaults]\ncooldown = "5m"\n[[rules]]\nname = "surge"\nwhen = "traffic_rpm > 2 * traffic_baseline"\n'
        '[[rules.actions]]\ntype = "scale"\nmax_replicas = 8\n'
        '[[rules.actions]]\ntype = "alert"\nchannel = "log"\ncooldown = "1h"\n'
    )
    a, b = load_rules_file(tmp_path / "r.yaml"), load_rules_file(tmp_path / "r.toml")
    assert [(r.name, r.condition.source, r.cooldown_s) for r in a.rules] == \
        [(r.name, r.condition.source, r.cooldown_s) for r in b.rules] == [("surge", "traffic_rpm > 2 * traffic_baseline", 300.0)]
    assert [(s.type, s.cooldown_s, s.params) for s in a.rules[0].actions] == \
        [(s.type, s.cooldown_s, s.params) for s in b.rules[0].actions]
    assert a.rules[0].actions[1].cooldown_s == 3600


def test_broken_yaml_and_unknown_extensions_are_reported(tmp_path):
    (tmp_path / "bad.yaml").write_text("rules: [\n  - name: x\n")
    with pytest.raises(RuleError) as err:
        load_rules_file(tmp_path / "bad.yaml")
    assert "invalid YAML at line" in str(err.value)
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(RuleError, match="unsupported extension"):
        load_rules_file(tmp_path / "r.json")


def test_the_shipped_example_rules_file_is_valid():
    from pathlib import Path

    ruleset = load_rules_file(Path(__file__).resolve().parents[2] / "examples" / "rules.yaml")
    kinds = {a.type for r in ruleset.rules for a in r.actions}
    assert kinds == {"scale", "warm_caches", "reorder_processors", "suppress_promotion", "degrade_promises", "alert",
                     "flag_listing", "propose_promotion"}


def test_every_loader_error_names_the_file_first(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: x\n    when: trafic_rpm > 3\n    actions: [{type: alert}]\n")
    with pytest.raises(RuleError) as err:
        load_rules_file(bad)
    assert str(err.value).startswith(f"{bad}: rule 'x'.when: unknown signal 'trafic_rpm'")
    assert (err.value.file, err.value.rule, err.value.field) == (str(bad), "x", "when")
    with pytest.raises(RuleError) as err:
        load_rules_file(tmp_path / "missing.yaml")
    assert str(err.value) == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"


def test_a_watched_rules_file_reloads_on_edit_and_keeps_the_last_good_rules_on_a_bad_one(tmp_path):
    import os

    from shopfloor.tower import RulesFileWatch

    path = tmp_path / "rules.yaml"
    reports: list[str] = []
    watch = RulesFileWatch(path, reports.append)
    assert watch.poll().rules == []  # no file yet: no rules, nothing to report
    assert watch.poll() is None and reports == []

    def write(text: str, mtime_s: int) -> None:
        path.write_text(text)
        os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))  # a distinct version even within one clock tick

    write("rules:\n  - name: a\n    when: traffic_rpm > 3\n    actions: [{type: alert}]\n", 1_000)
    assert [r.name for r in watch.poll().rules] == ["a"]
    assert watch.poll() is None  # unchanged: not re-read
    write("rules:\n  - name: b\n    when: trafic_rpm > 3\n    actions: [{type: alert}]\n", 2_000)
    assert watch.poll() is None  # invalid: the caller keeps rule 'a'
    assert "rule 'b'.when: unknown signal 'trafic_rpm'" in reports[-1] and str(path) in reports[-1]
    n = len(reports)
    assert watch.poll() is None and len(reports) == n  # reported once per version
    write("rules:\n  - name: c\n    when: traffic_rpm > 5\n    actions: [{type: alert}]\n", 3_000)
    assert [r.name for r in watch.poll().rules] == ["c"]
    path.unlink()
    assert watch.poll().rules == []


def test_a_strict_first_load_raises_and_later_polls_only_read_an_edit(tmp_path):
    import os

    from shopfloor.tower import RulesFileWatch

    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: a\n    when: trafic_rpm > 3\n    actions: [{type: alert}]\n")
    reports: list[str] = []
    watch = RulesFileWatch(path, reports.append)
    with pytest.raises(RuleError, match="trafic_rpm"):
        watch.load()
    assert watch.poll() is None and reports == []  # the version load() saw is not read again
    path.write_text("rules:\n  - name: a\n    when: traffic_rpm > 3\n    actions: [{type: alert}]\n")
    os.utime(path, ns=(5 * 10**9, 5 * 10**9))
    assert [r.name for r in watch.poll().rules] == ["a"]


def test_a_scale_action_whose_min_replicas_exceeds_max_replicas_is_refused_naming_rule_and_fields(tmp_path):
    path = tmp_path / "r9.yaml"
    path.write_text("rules:\n  - name: x\n    when: traffic_rpm > 1\n    actions:\n"
                    "      - type: scale\n        min_replicas: 10\n        max_replicas: 2\n")
    with pytest.raises(RuleError) as err:
        load_rules_file(path)
    assert err.value.rule == "x" and err.value.field == "actions[0].min_replicas"
    assert str(err.value) == (f"{path}: rule 'x'.actions[0].min_replicas: min_replicas (10) is greater than "
                              "max_replicas (2)")
    rules = parse_rules(_doc(actions=[{"type": "scale", "min_replicas": 2, "max_replicas": 2}]))  # equal is fine
    assert rules.rules[0].actions[0].params == {"min_replicas": 2, "max_replicas": 2}


@pytest.mark.parametrize("bound, value", [("min_replicas", "three"), ("max_replicas", -1), ("max_replicas", 2.5),
                                          ("min_replicas", True), ("max_replicas", 10**30)])
def test_scale_replica_bounds_must_be_whole_numbers_in_range(bound, value):
    with pytest.raises(RuleError) as err:
        parse_rules(_doc(actions=[{"type": "scale", bound: value}]))
    assert err.value.field == f"actions[0].{bound}" and "whole number from 0 to 10,000" in str(err.value)



def test_the_example_slow_checkout_rule_watches_the_tail_not_the_mean():
    from pathlib import Path

    ruleset = load_rules_file(Path(__file__).resolve().parents[2] / "examples" / "rules.yaml")
    slow = next(r for r in ruleset.rules if r.name == "checkout_slow")
    # a healthy mean with a slow tail fires; a slow tail on a trickle of checkouts does not
    assert slow.condition.evaluate({"checkout_latency_p95_ms": 950.0, "checkout_latency_ms": 120.0,
                                    "checkout_attempts_per_min": 40})
    assert not slow.condition.evaluate({"checkout_latency_p95_ms": 950.0, "checkout_attempts_per_min": 2})
    assert not slow.condition.evaluate({"checkout_latency_p95_ms": 300.0, "checkout_attempts_per_min": 40})


@pytest.mark.parametrize("name", ["r\x00x", [1, 2], "a" * 201, "tab\there"])
def test_a_rule_name_that_is_not_a_short_printable_text_is_refused_naming_the_field(name):
    rules = {"rules": [{"name": name, "when": "traffic_rpm > 1",
                        "actions": [{"type": "alert", "channel": "log", "message": "hi"}]}]}
    with pytest.raises(RuleError) as err:
        parse_rules(rules, CATALOG)
    assert err.value.field == "rules[0].name" and "printable characters" in str(err.value)
