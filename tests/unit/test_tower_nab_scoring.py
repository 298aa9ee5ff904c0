"""NAB scoring on tiny hand-made series, with every figure worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shopfloor.tower.nab import collapse_events, score_series, summarise

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TS = [T0 + timedelta(minutes=k) for k in range(20)]
WINDOWS = [(TS[5], TS[8]), (TS[14], TS[16])]


def test_alerts_collapse_into_events_by_row_gap():
    assert collapse_events([1, 2, 6, 7, 15, 19], 1) == [[1, 2], [6, 7], [15], [19]]
    assert collapse_events([1, 2, 6, 7, 15, 19], 4) == [[1, 2, 6, 7], [15, 19]]


def test_precision_recall_and_delay_match_the_hand_computation():
    s = score_series("s", TS, [1, 2, 6, 7, 15, 19], WINDOWS, probation=0.0, collapse_gap=1)
    # events [1,2] [6,7] [15] [19]; first alerts 1 (out), 6 (in), 15 (in), 19 (out)
    assert (s.events, s.true_events) == (4, 2)
    assert (s.windows, s.detected_windows) == (2, 2)
    assert s.delays_h == pytest.approx([1 / 60, 1 / 60])  # 6-5 and 15-14 minutes
    assert s.delays_frac == pytest.approx([1 / 3, 1 / 2])


def test_probation_drops_early_alerts():
    s = score_series("s", TS, [1, 2, 6, 7, 15, 19], WINDOWS, probation=0.1, collapse_gap=1)  # rows 0,1 unscored
    assert (s.alerts, s.events, s.true_events) == (5, 4, 2)  # [2] [6,7] [15] [19]
    s = score_series("s", TS, [1, 2, 6, 7, 15, 19], WINDOWS, probation=0.15, collapse_gap=1)  # rows 0..2
    assert (s.events, s.true_events) == (3, 2)


def test_an_event_starting_before_a_window_is_a_false_positive_but_still_detects_the_window():
    s = score_series("s", TS, [3, 4, 5], WINDOWS, probation=0.0, collapse_gap=1)
    assert (s.events, s.true_events, s.detected_windows) == (1, 0, 1)
    assert s.delays_h == [0.0]


def test_no_alerts_means_zero_recall_and_no_events():
    s = score_series("s", TS, [], WINDOWS, probation=0.0)
    assert (s.events, s.detected_windows) == (0, 0)


def test_summary_micro_averages_over_series():
    a = score_series("a", TS, [1, 2, 6, 7, 15, 19], WINDOWS, probation=0.0, collapse_gap=1)  # 2/4, 2/2
    b = score_series("b", TS, [10], WINDOWS, probation=0.0, collapse_gap=1)  # 0/1, 0/2
    out = summarise([a, b])
    assert out["precision"] == pytest.approx(2 / 5)
    assert out["recall"] == pytest.approx(2 / 4)
    assert out["f1"] == pytest.approx(round(2 * 0.4 * 0.5 / 0.9, 4))
    assert out["median_delay_h"] == pytest.approx(round(1 / 60, 3))


def test_labels_that_are_not_json_get_an_error_saying_what_was_expected(tmp_path):
    from shopfloor.tower.nab import load_windows

    bad = tmp_path / "labels.csv"
    bad.write_text("unique_id,ds,y\na,2024-01-01,1\n")
    with pytest.raises(ValueError, match="not JSON .*combined_windows.json"):
        load_windows(bad)
