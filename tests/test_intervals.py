"""Intervals with honest coverage (bench.intervals, and the IQM over tasks of
bench.analysis.stats): simulated normal and skewed samples at n = 5, 10 and 20 (per task: 10
and 20 + 50). Each interval covers the true median or IQM within a few points of its nominal
95%, or none is given."""

import math

import numpy as np
import pytest
from scipy import stats

from bench import intervals
from bench.analysis.stats import pooled_iqm, pooled_iqm_interval

SIMULATIONS = 300
LOGNORMAL_IQM = stats.trim_mean(np.random.default_rng(0).lognormal(size=2_000_000), 0.25)
SAMPLES = {"normal": (lambda rng, n: rng.normal(size=n), 0.0, 0.0),
           "lognormal": (lambda rng, n: rng.lognormal(size=n), 1.0, LOGNORMAL_IQM)}


def iqm(x, axis=-1):
    return stats.trim_mean(x, 0.25, axis=axis)


@pytest.mark.parametrize("shape", sorted(SAMPLES))
@pytest.mark.parametrize("n", [5, 10, 20])
def test_median_intervals_cover_or_are_refused(shape, n):
    draw, true_median, _ = SAMPLES[shape]
    rng = np.random.default_rng(n)
    got = [intervals.median_interval(draw(rng, n)) for _ in range(SIMULATIONS * 3)]
    if n < intervals.min_n_median():
        assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in got)
        return
    coverage = np.mean([lo <= true_median <= hi for lo, hi in got])
    assert coverage >= 0.95 - 0.03  # distribution-free: at least nominal, up to noise


@pytest.mark.parametrize("shape", sorted(SAMPLES))
@pytest.mark.parametrize("n", [5, 10, 20])
def test_iqm_intervals_cover_or_are_refused(shape, n):
    draw, _, true_iqm = SAMPLES[shape]
    rng = np.random.default_rng(100 + n)
    got = [intervals.bootstrap_interval(draw(rng, n), iqm, n_resamples=999, seed=i)
           for i in range(SIMULATIONS)]
    if n < intervals.BOOTSTRAP_MIN_N:
        assert all(math.isnan(lo) for lo, _ in got)
        return
    coverage = np.mean([lo <= true_iqm <= hi for lo, hi in got])
    assert abs(coverage - 0.95) <= 0.04


def test_the_smallest_n_with_a_95_percent_median_interval():
    assert intervals.min_n_median() == 6  # (min, max) covers 1 - 2^(1 - n): 93.8% at n = 5
    assert intervals.median_order(20) == (6, pytest.approx(0.9586, abs=1e-4))
    assert intervals.describe(math.nan, math.nan, 5) == "none at n = 5"



TWO_TASKS = (lambda rng, n: rng.lognormal(0, 0.5, n), lambda rng, n: rng.normal(1, 0.2, n))


@pytest.mark.parametrize("runs", [(5, 20), (10, 10), (15, 30),
                                  pytest.param((20, 50), marks=pytest.mark.slow),
                                  pytest.param((10, 50), marks=pytest.mark.slow)])
def test_the_iqm_over_tasks_interval_covers_or_is_refused(runs):
    """Two tasks of different shapes and numbers of runs, each weighing the same: the stratified
    percentile bootstrap covers the pooled IQM of the two distributions (from 10^6 draws each)
    within 4 points of 95% (1,000 simulations gave 0.931 at 10 + 10 runs, 0.942 at 15 + 30,
    0.946 at 20 + 50, 0.925 at 10 + 50), or gives none below 10 runs on a task."""
    rng = np.random.default_rng(sum(runs))
    truth = pooled_iqm([draw(rng, 1_000_000) for draw in TWO_TASKS])
    simulations = 400 if min(runs) >= intervals.BOOTSTRAP_MIN_N else 10
    got = [pooled_iqm_interval([draw(rng, n) for draw, n in zip(TWO_TASKS, runs, strict=True)],
                               rng, resamples=250) for _ in range(simulations)]
    if min(runs) < intervals.BOOTSTRAP_MIN_N:
        assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in got)
        return
    coverage = np.mean([lo <= truth <= hi for lo, hi in got])
    assert abs(coverage - 0.95) <= 0.04, coverage
