"""The harness's statistics against values worked out by hand."""

import math

import numpy as np
import pytest

from evals import stats


def test_mean_and_sample_std():
    assert stats.mean([1, 2, 3, 4]) == 2.5
    # deviations ±1.5, ±0.5: (2.25*2 + 0.25*2) / (4-1) = 5/3
    assert stats.std([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3))
    assert stats.std([7.0]) is None
    assert stats.mean([]) is None


def test_bootstrap_two_points_spans_both():
    # Resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: 2.5% and 97.5% fall on 0 and 1.
    assert stats.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_skewed_four_points():
    # Resample mean of [0,0,0,1] is k/4 with k ~ Binomial(4, 1/4): P(k=0)=0.316 > 0.025, so the low end is 0;
    # P(k<=2)=0.949 < 0.975 <= P(k<=3)=0.996, so the high end is 3/4.
    assert stats.bootstrap_ci([0, 0, 0, 1]) == (0.0, 0.75)


def test_bootstrap_matches_normal_approximation_and_contains_mean():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=200)
    lo, hi = stats.bootstrap_ci(x)
    m = x.mean()
    half = 1.96 * x.std(ddof=0) / math.sqrt(x.size)
    assert lo < m < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.08)
    assert (lo + hi) / 2 == pytest.approx(m, abs=0.1 * half)


def test_bootstrap_is_seeded_and_degenerate_cases():
    x = [0.1, 0.5, 0.2, 0.9, 0.4]
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)
    assert stats.bootstrap_ci(x, seed=1) != stats.bootstrap_ci(x, seed=2)
    assert stats.bootstrap_ci([3.0]) == (3.0, 3.0)
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert stats.bootstrap_ci([]) is None


def test_describe_shape():
    d = stats.describe([1, 2, 3, 4])
    assert d["mean"] == 2.5 and d["n"] == 4
    assert d["std"] == pytest.approx(math.sqrt(5 / 3))
    lo, hi = d["ci95"]
    assert 1 <= lo < 2.5 < hi <= 4


def test_win_rate_ties_count_half_and_direction():
    a, b = [2, 3, 4, 6], [1, 3, 5, 2]  # win, tie, loss, win
    assert stats.win_rate(a, b) == (2 + 0.5) / 4
    # lower is better: only 4 < 5 wins, 3 = 3 ties
    assert stats.win_rate(a, b, higher_is_better=False) == (1 + 0.5) / 4
    assert stats.win_rate([1, 1], [1, 1]) == 0.5
    with pytest.raises(ValueError):
        stats.win_rate([1, 2], [1])


def test_paired_comparison():
    c = stats.paired_comparison([2, 3, 4, 6], [1, 3, 5, 2])
    assert c["mean_diff"] == 1.0  # diffs 1, 0, -1, 4
    assert c["win_rate"] == 0.625
    assert c["n_pairs"] == 4
    lo, hi = c["ci95"]
    assert lo <= 1.0 <= hi
    assert (lo, hi) == tuple(stats.bootstrap_ci([1, 0, -1, 4]))
    # the smallest and largest possible resample means bound the interval
    assert -1 <= lo and hi <= 4
