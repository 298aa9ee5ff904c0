"""Traffic forecasting: trace reading, the online forecaster, and MSTL at 5-minute grain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopfloor.forecast.traffic import (
    OnlineForecastConfig,
    OnlineTrafficForecaster,
    TraceError,
    aggregate_frame,
    forecast_traffic_mstl,
    forecast_traffic_online,
    read_request_trace,
    to_long_frame,
)


def _daily(days: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 1440)
    rate = 100 * (1 + 0.8 * np.sin(2 * np.pi * t / 1440))
    return rng.poisson(rate).astype(float)


def test_trace_minutes_missing_from_the_file_become_zero_demand(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("minute,count\n2026-01-01 00:00:00,5\n2026-01-01 00:03:00,7\n")
    series = read_request_trace(path)
    assert series.tolist() == [5.0, 0.0, 0.0, 7.0]
    assert str(series.index.tz) == "UTC"


def test_trace_naive_times_are_read_in_the_given_zone_and_stored_as_utc(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("minute,count\n1995-07-01 00:00:00,5\n")
    series = read_request_trace(path, tz="Etc/GMT+4")  # UTC-4
    assert series.index[0] == pd.Timestamp("1995-07-01 04:00", tz="UTC")


@pytest.mark.parametrize(
    "content, field",
    [
        ("when,count\n2026-01-01 00:00,1\n", "minute"),
        ("minute,n\n2026-01-01 00:00,1\n", "count"),
        ("minute,count\nnot-a-date,1\n", "minute"),
        ("minute,count\n2026-01-01 00:00,-1\n", "count"),
        ("minute,count\n2026-01-01 00:00,x\n", "count"),
        ("minute,count\n2026-01-01 00:00,1\n2026-01-01 00:00,2\n", "minute"),
    ],
)
def test_bad_traces_raise_an_error_naming_the_field(tmp_path, content, field):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(TraceError) as err:
        read_request_trace(path)
    assert err.value.field == field


@pytest.mark.parametrize("start", ["2024-03-09 05:00", "2024-11-02 04:00"], ids=["spring-forward", "fall-back"])
def test_a_trace_logged_in_local_wall_clock_time_reads_the_same_across_a_clock_change_as_in_utc(tmp_path, start):
    """Spring: the skipped hour is simply absent from the file. Autumn: the repeated hour is written twice, in
    order, and the row order tells the two apart."""
    utc = pd.date_range(start, periods=3 * 1440, freq="min", tz="UTC")
    counts = (np.arange(len(utc)) % 97).astype(float)
    local = utc.tz_convert("America/New_York").tz_localize(None)
    path = tmp_path / "local.csv"
    pd.DataFrame({"minute": local.strftime("%Y-%m-%d %H:%M:%S"), "count": counts}).to_csv(path, index=False)
    series = read_request_trace(path, tz="America/New_York")
    assert series.index.equals(utc) and series.tolist() == counts.tolist()


def test_a_trace_with_utc_offsets_or_epoch_times_reads_the_same_whatever_the_zone_option(tmp_path):
    utc = pd.date_range("2024-11-02 04:00", periods=2000, freq="min", tz="UTC")
    counts = (np.arange(len(utc)) % 13).astype(float)
    written = {
        "offsets": utc.tz_convert("America/New_York").strftime("%Y-%m-%dT%H:%M:%S%z"),
        "z": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "epoch-s": utc.asi8 // 10**9,
        "epoch-ms": utc.asi8 // 10**6,
        "access-log": utc.tz_convert("Etc/GMT+4").strftime("%d/%b/%Y:%H:%M:%S %z"),
    }
    for name, minutes in written.items():
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"minute": minutes, "count": counts}).to_csv(path, index=False)
        series = read_request_trace(path, tz="Europe/Berlin")  # ignored: the times say where they are
        assert series.index.equals(utc), name
        assert series.tolist() == counts.tolist(), name


def test_midnight_written_as_a_bare_date_and_a_zone_name_suffix_read_as_the_times_they_are(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("minute,count\n2024-01-03 23:59:00,1\n2024-01-04,2\n2024-01-04 00:01:00,3\n")
    series = read_request_trace(path, tz="Etc/GMT+4")
    assert series.index[1] == pd.Timestamp("2024-01-04 04:00", tz="UTC") and series.tolist() == [1.0, 2.0, 3.0]
    path.write_text("minute,count\n2024-01-04,2\n2024-01-04 00:01:00,3\n")  # a bare date first
    assert read_request_trace(path, tz="Etc/GMT+4").tolist() == [2.0, 3.0]
    path.write_text("minute,count\n2024-01-04 00:00:00 UTC,2\n2024-01-04 00:01:00 UTC,3\n")
    series = read_request_trace(path, tz="Etc/GMT+4")  # the zone the file names wins
    assert series.index[0] == pd.Timestamp("2024-01-04 00:00", tz="UTC") and series.attrs["source_tz"] is None


@pytest.mark.parametrize(
    "rows, needle",
    [
        (["2024-03-10 01:59:00", "2024-03-10 02:30:00"],
         "row 3 ('2024-03-10 02:30:00') does not exist in America/New_York"),
        (["2024-11-03 00:59:00", "2024-11-03 01:30:00", "2024-11-03 02:00:00"],
         "row 3 ('2024-11-03 01:30:00') occurs twice in America/New_York"),
        (["2024-01-01T00:00:00Z", "2024-01-01 00:01:00"], "row 3 ('2024-01-01 00:01:00') has no UTC offset"),
        (["0", "1"], "Unix epoch seconds or milliseconds"),
        (["1900-01-01 00:00:00", "2024-01-01 00:00:00"], "more than 1,052,640 (two years)"),
    ],
    ids=["nonexistent", "ambiguous-once", "mixed-offsets", "small-numbers", "stray-timestamp"],
)
def test_minutes_that_cannot_be_placed_in_time_are_refused_naming_the_row(tmp_path, rows, needle):
    path = tmp_path / "t.csv"
    path.write_text("minute,count\n" + "".join(f"{r},1\n" for r in rows))
    with pytest.raises(TraceError) as err:
        read_request_trace(path, tz="America/New_York")
    assert err.value.field == "minute" and needle in err.value.message


def test_missing_trace_file_is_reported(tmp_path):
    with pytest.raises(TraceError) as err:
        read_request_trace(tmp_path / "nope.csv")
    assert err.value.field == "trace"


def test_online_forecaster_anticipates_the_daily_rise_from_previous_days():
    values = _daily(4)
    model = OnlineTrafficForecaster()
    # Stop at a trough-to-peak ramp: minute 1440*3 + 0 has rate 100 and is rising to 180 at +360.
    model.observe_many(values[: 3 * 1440])
    fc = model.forecast(360)
    assert 80 < fc.mean[0] < 120
    assert 150 < fc.mean[-1] < 210  # a flat (level-only) forecast would say ~100
    assert (fc.upper >= fc.mean).all()


def test_online_upper_quantile_covers_about_the_requested_share_of_minutes():
    values = _daily(5, seed=2)
    model = OnlineTrafficForecaster(OnlineForecastConfig(quantile=0.9))
    hits = total = 0
    for i, v in enumerate(values):
        if i >= 2 * 1440 and i % 10 == 0:
            fc = model.forecast(10)
            actual = values[i : i + 10]
            hits += int((actual <= fc.upper[: len(actual)]).sum())
            total += len(actual)
        model.observe(v)
    assert 0.84 < hits / total < 0.96


def test_online_forecast_frame_follows_the_long_frame_convention():
    idx = pd.date_range("2026-01-01", periods=3 * 1440, freq="min", tz="UTC")
    frame = forecast_traffic_online(pd.Series(_daily(3), index=idx), horizon=30)
    assert list(frame.columns) == ["unique_id", "ds", "OnlineSeasonal", "q_0.9"]
    assert frame["ds"].iloc[0] == idx[-1] + pd.Timedelta(minutes=1) and len(frame) == 30


def test_mstl_forecasts_five_minute_traffic_with_an_upper_quantile():
    idx = pd.date_range("2026-01-01", periods=4 * 1440, freq="min", tz="UTC")
    five = aggregate_frame(to_long_frame(pd.Series(_daily(4), index=idx)), "5min")
    assert len(five) == 4 * 288 and five["y"].sum() == _daily(4).sum()
    fc = forecast_traffic_mstl(five, horizon=48, freq="5min", quantiles=(0.9,))
    assert list(fc.columns) == ["unique_id", "ds", "MSTL", "q_0.9"]
    assert (fc["q_0.9"] >= fc["MSTL"]).all()
    truth = _daily(5)[4 * 1440 : 4 * 1440 + 240].reshape(-1, 5).sum(axis=1)
    mape = np.mean(np.abs(fc["MSTL"].to_numpy() - truth) / truth)
    assert mape < 0.15


def test_mstl_refuses_less_than_two_days():
    idx = pd.date_range("2026-01-01", periods=1440, freq="min", tz="UTC")
    five = aggregate_frame(to_long_frame(pd.Series(_daily(1), index=idx)), "5min")
    with pytest.raises(TraceError) as err:
        forecast_traffic_mstl(five, horizon=12)
    assert err.value.field == "frame"


# --- surges that recur, crowds that leave ---------------------------------------------------------------------------


def _flat_with_surges(days: int, surge_days: set[int], at: int = 600, length: int = 60, factor: float = 5.0):
    rng = np.random.default_rng(9)
    values = rng.poisson(50.0, days * 1440).astype(float)
    for d in surge_days:
        start = d * 1440 + at
        values[start : start + length] = rng.poisson(50.0 * factor, length)
    return values


def _forecast_at(values: np.ndarray, minute: int, horizon: int = 15, **config) -> np.ndarray:
    model = OnlineTrafficForecaster(OnlineForecastConfig(**config))
    model.observe_many(values[:minute])
    return model.forecast(horizon).mean


def test_a_surge_that_came_back_on_two_previous_days_is_forecast_before_it_starts():
    values = _flat_with_surges(8, surge_days={2, 5, 6})  # 3 of the 7 previous days: the median ignores it
    mean = _forecast_at(values, 7 * 1440 + 600 - 10)
    assert mean.max() > 3 * 50
    without = _forecast_at(values, 7 * 1440 + 600 - 10, recurring_rank=0)
    assert without.max() < 1.5 * 50


def test_a_surge_seen_on_one_previous_day_only_is_not_planned_for():
    values = _flat_with_surges(8, surge_days={6})
    assert _forecast_at(values, 7 * 1440 + 600 - 10).max() < 1.5 * 50


def test_the_level_follows_a_crowd_down_at_once_when_it_leaves():
    values = np.concatenate([np.full(60, 50.0), np.full(30, 400.0), np.full(6, 50.0)])
    model = OnlineTrafficForecaster()
    model.observe_many(values)
    assert model.level() == pytest.approx(50.0)
    model_slow = OnlineTrafficForecaster(OnlineForecastConfig(drop_factor=0))
    model_slow.observe_many(values)
    assert model_slow.level() > 200


def test_a_noisy_lull_at_a_few_requests_a_minute_does_not_count_as_a_crowd_leaving():
    values = np.array([4.0] * 15 + [1.0, 0.0, 1.0, 2.0, 1.0])  # slow mean 3.25, fast 1.0: a lull, not a drop
    model = OnlineTrafficForecaster()
    model.observe_many(values)
    assert model.level() == pytest.approx(values.mean())


# --- over-dispersed (bursty) series ---------------------------------------------------------------------------------


def _replayed(values: np.ndarray, **config) -> OnlineTrafficForecaster:
    """A forecaster fed ``values`` while forecasting every 5 minutes (so its error pool is filled, as in a replay)."""
    model = OnlineTrafficForecaster(OnlineForecastConfig(**config))
    for i, v in enumerate(values):
        if i % 5 == 0 and i >= 20:
            model.forecast(15)
        model.observe(v)
    return model


def _bursty(days: int, rate: float = 20.0, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rate * np.exp(rng.normal(0.0, 1.0, days * 1440))).astype(float)


def test_dispersion_is_about_one_on_poisson_traffic_and_large_on_bursty_traffic():
    calm = _replayed(np.random.default_rng(1).poisson(50.0, 2 * 1440).astype(float))
    bursty = _replayed(_bursty(2))
    assert calm.dispersion() < 1.5
    assert bursty.dispersion() > 3.0


def test_on_a_bursty_series_bursts_that_happen_to_come_back_are_not_planned_for_as_recurring_surges():
    values = _bursty(8)
    spiky = {}
    for widened in (True, False):
        model = _replayed(values[: 7 * 1440], recurring_dispersion=widened)
        hits = 0
        for k in range(0, 1440, 15):  # the next day, origin by origin, without new observations of it
            model.observe_many(values[7 * 1440 + k : 7 * 1440 + k + 15])
            hits += model.seasonal_ratio(15, model.level()).max() > 2.5
        spiky[widened] = hits
    assert spiky[False] > 3 * max(spiky[True], 1)


def test_a_clean_recurring_surge_is_still_planned_for_with_the_dispersion_guard():
    values = _flat_with_surges(8, surge_days={2, 5, 6})
    model = _replayed(values[: 7 * 1440 + 600 - 10])
    assert model.dispersion() < 1.5
    assert model.forecast(15).mean.max() > 3 * 50


def _with_crowds(days: int, every: int = 180, seed: int = 9) -> np.ndarray:
    """Poisson traffic at 50/min with a x8 crowd of 20 minutes every ``every`` minutes (onset errors far beyond
    the band's quantile, and more than 5 % of the minutes)."""
    values = np.random.default_rng(seed).poisson(50.0, days * 1440).astype(float)
    for start in range(120, len(values) - 20, every):
        values[start : start + 20] = np.random.default_rng(start).poisson(400.0, 20)
    return values


def _band_after(values: np.ndarray, **kw) -> OnlineTrafficForecaster:
    return _replayed(values, quantile=0.95, **kw)


def test_surge_sized_errors_are_kept_out_of_the_band_when_an_outlier_factor_is_set():
    values = _with_crowds(2)
    pooled = _band_after(values)
    trimmed = _band_after(values, outlier_factor=3.0)
    assert trimmed.outliers > 0 and pooled.outliers == 0
    # The crowds' onsets widen the pooled band; kept out, the band is that of the Poisson noise between crowds.
    assert trimmed._error_quantile() < 0.8 * pooled._error_quantile()
    calm = _band_after(np.random.default_rng(9).poisson(50.0, 2 * 1440).astype(float), outlier_factor=3.0)
    assert calm.outliers < 0.002 * 2 * 1440 * 3


def test_a_negative_outlier_factor_is_refused_naming_it():
    with pytest.raises(TraceError) as err:
        OnlineTrafficForecaster(OnlineForecastConfig(outlier_factor=-1.0))
    assert err.value.field == "outlier_factor"
