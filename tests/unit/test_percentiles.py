"""One percentile definition for reports, dashboard and benchmarks: numpy's default (linear between ranks)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from shopfloor.domain.stats import percentile, percentiles


def test_the_median_of_an_even_count_lies_halfway_between_the_middle_two():
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5


def test_the_ends_are_the_minimum_and_the_maximum():
    assert percentiles([5.0, 9.0, 1.0], (0.0, 1.0)) == [1.0, 9.0]


def test_it_agrees_with_numpy_on_random_samples():
    rng = random.Random(3)
    for n in (1, 2, 7, 100, 1001):
        xs = [rng.lognormvariate(3, 1) for _ in range(n)]
        qs = (0.01, 0.1, 0.5, 0.9, 0.99)
        assert percentiles(xs, qs) == [float(np.quantile(xs, q)) for q in qs]


def test_no_values_have_no_percentile_and_a_quantile_outside_0_1_is_refused():
    assert percentile([], 0.99) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 99)
