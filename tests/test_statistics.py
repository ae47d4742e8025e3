"""Intervals, paired tests, Holm's correction and the seeds a difference needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedenv.evaluation.statistics import (
    compare_paired,
    holm,
    interval_method,
    mean_interval,
    paired_test,
    seeds_needed,
)


def test_small_samples_get_the_student_t_interval():
    interval = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert interval.method == "t" and interval.n == 5
    assert (interval.low, interval.high) == pytest.approx((3 - 1.9632, 3 + 1.9632), abs=1e-4)
    # skewed but small: still t (a bootstrap of 5 values under-covers)
    assert interval_method([0, 0, 0, 0, 10]) == "t"
    one = mean_interval([2.5])
    assert one.method == "none" and math.isnan(one.low) and not one.excludes_zero()
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])


def test_skewed_samples_of_ten_or_more_get_a_seeded_bca_bootstrap():
    values = [0.0] * 14 + [10.0, 12.0]
    assert interval_method(values) == "bootstrap"
    a, b = mean_interval(values), mean_interval(values)
    assert a.method == "bootstrap" and (a.low, a.high) == (b.low, b.high)
    assert a.low < a.mean < a.high
    assert interval_method(np.linspace(0, 1, 16)) == "t"  # symmetric: t


def test_the_paired_test_matches_the_interval():
    name, p = paired_test([0.5, 0.7, 0.4, 0.6, 0.55])
    assert name == "t" and p < 0.001
    assert paired_test([0.0] * 5) == ("t", 1.0)
    assert paired_test([0.3] * 4) == ("t", 0.0)  # the same difference on every seed
    skewed = [0.0] * 12 + [5.0, 6.0, 7.0, 9.0]
    name, p = paired_test(skewed)
    assert name == "wilcoxon" and 0 < p < 0.1
    assert paired_test([1.0])[0] == "none"


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, float("nan"), 0.01]) == pytest.approx([0.2, float("nan"), 0.02],
                                                            nan_ok=True)
    assert holm([0.6, 0.7]) == [1.0, 1.0]


def test_seeds_needed_is_the_paired_t_tests_sample_size_for_80_percent_power():
    assert seeds_needed(0.5, 1.0) == 34  # Cohen's d = 0.5: the textbook 34 pairs
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(-1.0, 1.0) == 10
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1.0, 0.0) == 2
    assert seeds_needed(1e-4, 1.0) is None  # more than 100,000


def test_compare_paired_pairs_by_seed_and_treats_float_noise_as_no_difference():
    values = {"equal": {0: 1.0, 1: 2.0, 2: None, 3: 4.0},
              "loo": {0: 1.5, 1: 2.6, 2: 3.0, 3: 4.4},
              "none": {0: 1.0 + 1e-15, 1: 2.0, 2: 3.0, 3: 4.0 - 1e-15}}
    loo, none = compare_paired("m", values, "equal")
    assert loo.seeds == (0, 1, 3) and loo.difference.mean == pytest.approx(0.5)
    assert none.difference.mean == 0.0 and none.p_value == 1.0 and none.seeds_needed is None
    with pytest.raises(ValueError, match="reference 'shapley'"):
        compare_paired("m", values, "shapley")
