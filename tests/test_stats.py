"""Paired statistics against SciPy's own bootstrap and exact Wilcoxon p-values by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from strokeseg.evaluation import stats

# hand-made per-subject Dice of a reference method and another one
REFERENCE = {"s1": 0.50, "s2": 0.60, "s3": 0.70, "s4": 0.40, "s5": 0.55, "s6": 0.61, "s7": 0.30}
OTHER = {"s1": 0.62, "s2": 0.57, "s3": 0.75, "s4": 0.60, "s5": 0.55, "s6": 0.68, "s7": 0.20}
DIFFS = np.array([OTHER[s] - REFERENCE[s] for s in sorted(REFERENCE)])


@pytest.mark.parametrize("seed", [0, 3])
def test_bootstrap_interval_equals_scipy_percentile_bootstrap_on_paired_values(seed):
    ours = stats.bootstrap_ci(DIFFS, n_resamples=5000, seed=seed)
    # SciPy's paired bootstrap of the mean difference, resampling subjects (pairs)
    a = np.array([OTHER[s] for s in sorted(OTHER)])
    b = np.array([REFERENCE[s] for s in sorted(REFERENCE)])
    theirs = scipy_stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        paired=True,
        method="percentile",
        confidence_level=0.95,
        n_resamples=5000,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)
    assert ours[0] < DIFFS.mean() < ours[1]


def test_bootstrap_interval_narrows_with_more_subjects_and_is_degenerate_for_constants():
    assert stats.bootstrap_ci([0.1] * 6) == pytest.approx((0.1, 0.1))
    rng = np.random.default_rng(0)
    few, many = rng.normal(0, 1, 10), rng.normal(0, 1, 1000)
    width = [np.diff(stats.bootstrap_ci(v, n_resamples=2000)).item() for v in (few, many)]
    assert width[1] < width[0] / 5  # ~ 1/sqrt(n): sqrt(100) = 10
    assert all(math.isnan(v) for v in stats.bootstrap_ci([]))


def test_wilcoxon_p_matches_exact_values_counted_by_hand_and_scipy():
    # n = 5, all differences positive: W- = 0; P(W <= 0) = 1/32 -> two-sided p = 2/32
    assert stats.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)
    # one negative difference of rank 2: W- = 2; subsets of ranks {1..5} summing to <= 2 are
    # {}, {1}, {2}: P = 3/32 -> two-sided p = 6/32
    assert stats.wilcoxon_p([0.1, -0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.1875)
    nonzero = DIFFS[DIFFS != 0]  # SciPy's default drops zero differences, as ours does
    assert stats.wilcoxon_p(DIFFS) == pytest.approx(scipy_stats.wilcoxon(nonzero).pvalue)
    assert stats.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(stats.wilcoxon_p([]))


def test_paired_comparison_of_hand_made_values():
    c = stats.paired_comparison(REFERENCE, OTHER, n_resamples=5000, seed=1)
    # differences +0.12 -0.03 +0.05 +0.20 0 +0.07 -0.10: sum 0.31 over 7 subjects
    assert c.n == 7
    assert c.mean_difference == pytest.approx(0.31 / 7)
    assert (c.ci_low, c.ci_high) == pytest.approx(stats.bootstrap_ci(DIFFS, 0.95, 5000, 1))
    assert c.p_value == pytest.approx(scipy_stats.wilcoxon(DIFFS[DIFFS != 0]).pvalue)
    swapped = stats.paired_comparison(OTHER, REFERENCE, n_resamples=5000, seed=1)
    assert swapped.mean_difference == pytest.approx(-c.mean_difference)
    assert swapped.p_value == pytest.approx(c.p_value)


def test_nan_pairs_are_left_out_and_unpaired_subjects_refused():
    c = stats.paired_comparison({"a": 0.5, "b": math.nan, "c": 0.2}, {"a": 0.7, "b": 0.1, "c": 0.2})
    assert c.n == 2 and c.mean_difference == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same subjects"):
        stats.paired_comparison({"a": 0.5}, {"b": 0.5})


def test_size_strata_by_ground_truth_volume():
    assert [stats.size_stratum(v) for v in (0.0, 0.99, 1.0, 10.0, 10.01)] == [
        "< 1 mL",
        "< 1 mL",
        "1-10 mL",
        "1-10 mL",
        "> 10 mL",
    ]
