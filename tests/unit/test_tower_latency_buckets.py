"""Latency percentiles from the funnel rollups' buckets: what the dashboard and the rules read besides the mean."""

from __future__ import annotations

import pytest

from shopfloor.tower.funnel import LATENCY_BOUNDS_MS, LATENCY_BUCKETS, latency_bucket, latency_quantile


def counts(**at_bound: int) -> list[int]:
    """Bucket counts from ``le_<bound>=n`` (``le_inf`` for the open last bucket)."""
    out = [0] * LATENCY_BUCKETS
    for key, n in at_bound.items():
        out[LATENCY_BUCKETS - 1 if key == "le_inf" else LATENCY_BOUNDS_MS.index(int(key[3:]))] = n
    return out


def test_a_latency_falls_in_the_first_bucket_whose_bound_it_does_not_exceed():
    assert latency_bucket(0.0) == 0 and latency_bucket(5.0) == 0 and latency_bucket(5.01) == 1
    assert latency_bucket(100.0) == LATENCY_BOUNDS_MS.index(100)
    assert latency_bucket(LATENCY_BOUNDS_MS[-1] + 1) == LATENCY_BUCKETS - 1


def test_the_quantile_is_interpolated_inside_its_bucket():
    # ten in (75, 100], two in (250, 400]: rank 11.4 of 12 lies 0.7 of the way through the slow bucket
    assert latency_quantile(counts(le_100=10, le_400=2), 0.95) == pytest.approx(355.0)
    # the median lies inside the fast bucket: rank 6 of its 10
    assert latency_quantile(counts(le_100=10, le_400=2), 0.5) == pytest.approx(75 + 25 * 0.6)


def test_one_slow_request_moves_the_mean_but_not_the_95th_percentile():
    latencies = [100.0] * 19 + [3000.0]
    hist = [0] * LATENCY_BUCKETS
    for ms in latencies:
        hist[latency_bucket(ms)] += 1
    assert sum(latencies) / len(latencies) == 245.0
    assert latency_quantile(hist, 0.95) == pytest.approx(100.0)
    assert latency_quantile(hist, 0.99) == pytest.approx(2500 + 2500 * 0.8)


def test_a_quantile_in_the_open_last_bucket_reads_as_the_last_bound():
    assert latency_quantile(counts(le_inf=3), 0.5) == float(LATENCY_BOUNDS_MS[-1])


def test_nothing_counted_has_no_quantile_and_bad_arguments_are_refused():
    assert latency_quantile([0] * LATENCY_BUCKETS, 0.95) is None
    with pytest.raises(ValueError, match="q must be"):
        latency_quantile(counts(le_100=1), 1.0)
    with pytest.raises(ValueError, match="bucket counts"):
        latency_quantile([1, 2], 0.5)


def test_histograms_add_up_bucket_by_bucket_and_a_missing_one_adds_nothing():
    from shopfloor.tower.funnel import sum_latency_buckets

    assert sum_latency_buckets([counts(le_100=2), None, [], counts(le_100=1, le_inf=4)]) == \
        counts(le_100=3, le_inf=4)
    assert sum_latency_buckets([]) == [0] * LATENCY_BUCKETS
