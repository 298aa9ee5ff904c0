"""The seasonal robust detector on generated series with known spikes, shifts and gaps."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from shopfloor.tower.anomaly import RollingZScoreDetector, SeasonalRobustDetector, detect

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
PER_DAY = 288


def seasonal_series(days: int = 10, seed: int = 7) -> tuple[list[datetime], np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * PER_DAY
    i = np.arange(n)
    daily = 100 + 40 * np.sin(2 * math.pi * (i % PER_DAY) / PER_DAY)
    values = daily + rng.normal(0, 3, n)
    return [START + k * STEP for k in range(n)], values


def event_rows(alert_times: list[datetime], timestamps: list[datetime], gap: int = 12) -> list[int]:
    pos = {t: k for k, t in enumerate(timestamps)}
    rows = sorted(pos[t] for t in alert_times)
    starts = [r for k, r in enumerate(rows) if k == 0 or r - rows[k - 1] > gap]
    return starts


def test_injected_spikes_are_found_with_few_false_alarms():
    ts, values = seasonal_series()
    spikes = [4 * PER_DAY + 50, 6 * PER_DAY + 140, 8 * PER_DAY + 222]
    for k in spikes:
        values[k] += 60
    alerts = detect(SeasonalRobustDetector("traffic"), ts, values)
    alerted = {ts.index(a.timestamp) for a in alerts}
    assert all(k in alerted for k in spikes)
    false_events = [r for r in event_rows([a.timestamp for a in alerts], ts) if r not in spikes]
    assert len(false_events) <= 2


def test_a_level_shift_alerts_at_its_onset_and_is_then_absorbed():
    ts, values = seasonal_series()
    onset = 6 * PER_DAY + 100
    values[onset:] += 50
    alerts = detect(SeasonalRobustDetector("traffic"), ts, values)
    rows = [ts.index(a.timestamp) for a in alerts]
    assert any(onset <= r <= onset + 6 for r in rows)
    # absorbed: nothing more than a day after the shift
    assert not [r for r in rows if r > onset + PER_DAY]


def test_alerts_carry_metric_expected_range_observed_and_score():
    ts, values = seasonal_series()
    k = 5 * PER_DAY + 10
    values[k] -= 80
    alert = next(a for a in detect(SeasonalRobustDetector("checkout_rate"), ts, values) if a.timestamp == ts[k])
    assert alert.metric == "checkout_rate"
    assert alert.kind == "dip"
    assert alert.observed == pytest.approx(values[k])
    assert alert.lower < alert.expected < alert.upper
    assert alert.observed < alert.lower
    assert alert.score >= 6.0
    assert alert.as_dict()["timestamp"] == ts[k].isoformat()


def test_each_point_is_judged_from_past_data_only():
    ts, values = seasonal_series(days=6)
    cut = 4 * PER_DAY
    changed = values.copy()
    changed[cut:] = changed[cut:] * 3 + 500  # rewrite the future
    before = [a for a in detect(SeasonalRobustDetector("x"), ts, values) if a.timestamp < ts[cut]]
    after = [a for a in detect(SeasonalRobustDetector("x"), ts, changed) if a.timestamp < ts[cut]]
    assert before == after
    # and the judgement of the first changed point uses the unchanged past
    d1, d2 = SeasonalRobustDetector("x"), SeasonalRobustDetector("x")
    for t, v in zip(ts[:cut], values[:cut]):
        d1.update(t, v)
        d2.update(t, v)
    a = d2.update(ts[cut], 10_000.0)
    assert a is not None and a.expected == pytest.approx(d1.update(ts[cut], 10_000.0).expected)


def test_a_daily_step_is_learned_as_season_not_flagged_every_day():
    n_days = 8
    ts = [START + k * STEP for k in range(n_days * PER_DAY)]
    rng = np.random.default_rng(3)
    slot = np.arange(len(ts)) % PER_DAY
    values = np.where((slot >= 108) & (slot < 204), 200.0, 100.0) + rng.normal(0, 2, len(ts))
    alerts = detect(SeasonalRobustDetector("traffic", min_history=PER_DAY), ts, values)
    late = [a for a in alerts if a.timestamp >= START + timedelta(days=3)]
    assert late == []


def test_a_long_gap_resets_the_level_instead_of_alerting_on_stale_data():
    ts, values = seasonal_series(days=4)
    ts = ts[: 3 * PER_DAY] + [t + timedelta(hours=6) for t in ts[3 * PER_DAY:]]
    values = values.copy()
    values[3 * PER_DAY:] += 30  # the level moved while the feed was down
    with_reset = detect(SeasonalRobustDetector("x"), ts, values)
    without_reset = detect(SeasonalRobustDetector("x", max_gap_factor=math.inf, shift_run=0), ts, values)
    after_gap = lambda alerts: [a for a in alerts if a.timestamp >= ts[3 * PER_DAY]]  # noqa: E731
    assert after_gap(with_reset) == []
    assert len(after_gap(without_reset)) >= 1


def test_missing_values_and_repeated_timestamps_are_skipped_not_judged():
    det = SeasonalRobustDetector("x", min_history=2)
    t0 = START
    for k in range(30):
        det.update(t0 + k * STEP, 10.0 + (k % 3))
    assert det.update(t0 + 30 * STEP, float("nan")) is None
    assert det.update(t0 + 29 * STEP, 1e9) is None  # not after the last judged point


def test_rolling_zscore_baseline_flags_a_plain_spike():
    ts, values = seasonal_series(days=2)
    values[400] += 100
    alerts = detect(RollingZScoreDetector("x"), ts, values)
    assert ts[400] in {a.timestamp for a in alerts}


def test_invalid_detector_settings_are_refused():
    with pytest.raises(ValueError):
        SeasonalRobustDetector(direction="sideways")
    with pytest.raises(ValueError):
        SeasonalRobustDetector(threshold=0)
