"""The campaign calendar: reading it, learning a kind's uplift, pre-scaling before an event, KEDA cron triggers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopfloor.planning.campaigns import (
    CalendarError,
    CampaignEvent,
    MinuteEvent,
    event_uplift,
    events_on_grid,
    learn_uplift,
    read_events,
)
from shopfloor.planning.capacity import (
    CapacityPolicy,
    PredictiveConfig,
    PredictivePlanner,
    plan_capacity,
    run_backtest,
    simulate,
)
from shopfloor.planning.k8s import ManifestOptions, scaled_object

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _flat(minutes: int, level: float = 40.0, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).poisson(level, minutes).astype(float)


def _with_events(values: np.ndarray, events: list[MinuteEvent], factor: float, level: float = 40.0) -> np.ndarray:
    """Events bring ``factor`` x the usual visitors (Poisson at the higher rate)."""
    out = values.copy()
    rng = np.random.default_rng(11)
    for e in events:
        out[e.start : e.end] = rng.poisson(level * factor, e.end - e.start)
    return out


# --- reading ------------------------------------------------------------------------------------------------------


def test_a_csv_calendar_reads_naive_times_in_the_given_zone_and_an_empty_uplift_as_unknown(tmp_path):
    path = tmp_path / "cal.csv"
    path.write_text("start,end,kind,uplift\n2026-03-02 09:00,2026-03-02 10:00,newsletter,\n"
                    "2026-03-01 20:00,2026-03-01 22:00,tv,4\n")
    events = read_events(path, tz="Etc/GMT+4")
    assert [e.kind for e in events] == ["tv", "newsletter"]  # sorted by start
    assert events[0].uplift == 4.0 and events[1].uplift is None
    assert events[1].start == datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)


def test_yaml_and_json_calendars_accept_a_list_or_an_events_mapping(tmp_path):
    rows = [{"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z", "kind": "sale", "uplift": 2.5}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.yaml").write_text("events:\n  - {start: '2026-03-02T09:00:00Z', end: '2026-03-02T10:00:00Z', "
                                     "kind: sale, uplift: 2.5}\n")
    assert read_events(tmp_path / "a.json") == read_events(tmp_path / "b.yaml")


@pytest.mark.parametrize(
    "row, field",
    [
        ("2026-03-02 10:00,2026-03-02 09:00,sale,", "end"),
        ("yesterday,2026-03-02 09:00,sale,", "start"),
        ("2026-03-02 09:00,2026-03-02 10:00,,", "kind"),
        ("2026-03-02 09:00,2026-03-02 10:00,sale,-2", "uplift"),
        ("2026-03-02 09:00,2026-03-02 10:00,sale,lots", "uplift"),
    ],
)
def test_a_bad_calendar_row_is_refused_naming_the_field_and_row(tmp_path, row, field):
    path = tmp_path / "cal.csv"
    path.write_text("start,end,kind,uplift\n" + row + "\n")
    with pytest.raises(CalendarError) as err:
        read_events(path)
    assert err.value.field == field and err.value.row == 1


def test_events_are_placed_on_a_trace_grid_and_those_outside_it_are_dropped():
    inside = CampaignEvent(T0 + timedelta(minutes=90), T0 + timedelta(minutes=150), "sale")
    outside = CampaignEvent(T0 + timedelta(days=3), T0 + timedelta(days=3, hours=1), "sale")
    assert events_on_grid([inside, outside], T0, 1440) == [MinuteEvent(90, 150, "sale")]


# --- learning the uplift ------------------------------------------------------------------------------------------


def test_the_uplift_of_a_kind_is_learned_from_its_past_events_only():
    past = [MinuteEvent(600, 660, "newsletter"), MinuteEvent(2040, 2100, "newsletter")]
    other = [MinuteEvent(1200, 1260, "tv")]
    values = _with_events(_with_events(_flat(3 * 1440), past, 3.0), other, 8.0)
    learned = learn_uplift(values, past + other, "newsletter")
    assert learned == pytest.approx(3.0, rel=0.1)
    assert learn_uplift(values, past + other, "tv") == pytest.approx(8.0, rel=0.1)
    # An event that has not ended within the history teaches nothing.
    assert learn_uplift(values[:2070], past, "newsletter") == pytest.approx(event_uplift(values, past[0]))
    assert learn_uplift(values, past, "unknown-kind") is None


# --- pre-scaling --------------------------------------------------------------------------------------------------


def test_the_planner_prescales_at_least_the_lag_before_a_known_event_starts():
    lag, capacity = 10, 20.0
    event = MinuteEvent(2 * 1440 + 300, 2 * 1440 + 360, "tv", uplift=5.0)
    values = _with_events(_flat(3 * 1440), [event], 5.0)
    without = simulate(values, PredictivePlanner(capacity, lag), capacity=capacity, lag=lag)
    planner = PredictivePlanner(capacity, lag, events=[event])
    with_cal = simulate(values, planner, capacity=capacity, lag=lag)
    # Ready for the event from its first minute: the replicas were asked for at least `lag` minutes earlier.
    assert with_cal.ready[event.start] * capacity >= values[event.start]
    assert with_cal.requested[event.start - lag] > without.requested[event.start - lag]
    assert with_cal.violation_minutes < without.violation_minutes
    # Without the calendar the first minutes of the surge are lost.
    assert without.ready[event.start] * capacity < values[event.start]


def test_an_unknown_uplift_is_learned_from_the_kinds_past_events_and_then_prescaled_for():
    lag, capacity = 10, 20.0
    past = MinuteEvent(1440 + 300, 1440 + 360, "tv")
    upcoming = MinuteEvent(2 * 1440 + 300, 2 * 1440 + 360, "tv")
    values = _with_events(_flat(3 * 1440), [past, upcoming], 5.0)
    learning = simulate(values, PredictivePlanner(capacity, lag, events=[past, upcoming]), capacity=capacity,
                        lag=lag)
    assert learning.ready[upcoming.start] * capacity >= values[upcoming.start]
    # The first event of the kind had nothing to learn from: it was not pre-scaled for.
    assert learning.ready[past.start] * capacity < values[past.start]


def test_the_backtest_reports_the_planner_with_and_without_the_calendar():
    event = MinuteEvent(2 * 1440 + 300, 2 * 1440 + 360, "tv", uplift=5.0)
    values = _with_events(_flat(3 * 1440), [event], 5.0)
    report = run_backtest(values, capacity=20.0, lag=10, config=PredictiveConfig(), events=[event])
    body = report.to_dict()
    assert body["with_calendar"]["events"] == 1
    assert body["with_calendar"]["violation_minutes"] < body["predictive"]["violation_minutes"]


# --- the live plan and KEDA ---------------------------------------------------------------------------------------


def _history(days: int = 3) -> pd.Series:
    idx = pd.date_range(T0, periods=days * 1440, freq="min", tz="UTC")
    return pd.Series(_flat(len(idx)), index=idx)


def test_the_plan_raises_the_slots_of_a_known_event_and_its_cron_trigger_starts_a_lag_before_it():
    series = _history()
    now = series.index[-1].to_pydatetime() + timedelta(minutes=1)
    event = CampaignEvent(now + timedelta(minutes=60), now + timedelta(minutes=120), "flash-sale", uplift=6.0)
    policy = CapacityPolicy(capacity_per_minute=30.0, lag_minutes=10, min_replicas=1)
    plain = plan_capacity(series, policy, now=now)
    plan = plan_capacity(series, policy, now=now, events=[event])
    during = [s.replicas for s in plan.slots if event.start <= s.start < event.end]
    before = [s.replicas for s in plain.slots if event.start <= s.start < event.end]
    assert min(during) > max(before)
    [planned] = plan.events
    assert planned.uplift_source == "given" and planned.request_at == event.start - timedelta(minutes=10)
    triggers = scaled_object(plan, ManifestOptions())["spec"]["triggers"]
    [cron] = [t for t in triggers if t["name"].startswith("event-flash-sale")]
    start = planned.request_at
    assert cron["metadata"]["start"] == f"{start.minute} {start.hour} {start.day} {start.month} *"
    assert cron["metadata"]["desiredReplicas"] == str(planned.replicas)


def test_an_event_beyond_the_horizon_with_a_learned_uplift_still_gets_its_cron_trigger():
    series = _history()
    values = series.to_numpy().copy()
    past_start = 1440 + 600
    values[past_start : past_start + 60] *= 4.0
    series = pd.Series(values, index=series.index)
    now = series.index[-1].to_pydatetime() + timedelta(minutes=1)
    past = CampaignEvent(T0 + timedelta(minutes=past_start), T0 + timedelta(minutes=past_start + 60), "newsletter")
    future = CampaignEvent(now + timedelta(days=2), now + timedelta(days=2, hours=1), "newsletter")
    plan = plan_capacity(series, CapacityPolicy(capacity_per_minute=30.0, min_replicas=1), now=now,
                         events=[past, future])
    [planned] = plan.events  # the past one is history, not a plan
    assert planned.uplift_source == "learned" and planned.uplift == pytest.approx(4.0, rel=0.15)
    names = [t["name"] for t in scaled_object(plan, ManifestOptions())["spec"]["triggers"]]
    assert any(n.startswith("event-newsletter") for n in names)


def test_an_event_of_a_kind_never_seen_and_without_uplift_is_listed_but_not_prescaled():
    series = _history()
    now = series.index[-1].to_pydatetime() + timedelta(minutes=1)
    event = CampaignEvent(now + timedelta(minutes=30), now + timedelta(minutes=90), "podcast")
    plan = plan_capacity(series, CapacityPolicy(capacity_per_minute=30.0, min_replicas=1), now=now, events=[event])
    assert plan.events[0].replicas is None and plan.events[0].uplift_source == "none"
    assert not [t for t in scaled_object(plan, ManifestOptions())["spec"]["triggers"] if t["name"].startswith("event")]


# --- the CLI ------------------------------------------------------------------------------------------------------


def _trace_file(tmp_path, values: np.ndarray) -> Path:
    idx = pd.date_range("2026-03-01", periods=len(values), freq="min")
    path = tmp_path / "trace.csv"
    pd.DataFrame({"minute": idx.strftime("%Y-%m-%d %H:%M:%S"), "count": values.astype(int)}).to_csv(path, index=False)
    return path


def test_capacity_plan_with_events_writes_the_event_into_the_keda_cron_triggers(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    trace = _trace_file(tmp_path, _flat(2 * 1440))
    cal = tmp_path / "cal.yaml"
    cal.write_text("- {start: '2026-03-03 01:00', end: '2026-03-03 02:00', kind: Black Friday, uplift: 5}\n")
    res = CliRunner().invoke(app, ["capacity", "plan", "--trace", str(trace), "--capacity-rps", "0.5",
                                   "--events", str(cal), "--k8s-out", str(tmp_path / "k8s"), "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["events"][0]["uplift_source"] == "given"
    doc = yaml.safe_load((tmp_path / "k8s" / "scaledobject.yaml").read_text())
    [cron] = [t for t in doc["spec"]["triggers"] if t["name"].startswith("event-black-friday")]
    assert cron["metadata"]["start"] == "50 0 3 3 *"  # ten minutes (the lag) before 01:00
    assert cron["metadata"]["desiredReplicas"] == str(body["events"][0]["replicas"])


def test_capacity_backtest_with_events_reports_with_and_without_the_calendar(tmp_path):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    # The second event is at another clock time than the first, so only the calendar can announce it (a surge at
    # the same clock time as yesterday's would be planned for by the surge echo without any calendar).
    event = MinuteEvent(2 * 1440 + 480, 2 * 1440 + 540, "tv")
    values = _with_events(_flat(3 * 1440), [MinuteEvent(1440 + 300, 1440 + 360, "tv"), event], 5.0)
    trace = _trace_file(tmp_path, values)
    cal = tmp_path / "cal.csv"
    cal.write_text("start,end,kind\n2026-03-02 05:00,2026-03-02 06:00,tv\n2026-03-03 08:00,2026-03-03 09:00,tv\n")
    res = CliRunner().invoke(app, ["capacity", "backtest", "--trace", str(trace), "--events", str(cal), "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["events_in_trace"] == 2
    assert body["with_calendar"]["violation_minutes"] < body["predictive"]["violation_minutes"]


def test_a_bad_events_file_is_a_one_line_error_naming_the_field(tmp_path):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    trace = _trace_file(tmp_path, _flat(1440))
    cal = tmp_path / "cal.csv"
    cal.write_text("start,end,kind\n2026-03-02 05:00,2026-03-02 04:00,tv\n")
    res = CliRunner().invoke(app, ["capacity", "backtest", "--trace", str(trace), "--events", str(cal)])
    assert res.exit_code != 0 and "--events end" in res.output and "Traceback" not in res.output
