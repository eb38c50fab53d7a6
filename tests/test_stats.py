"""benchmarks/stats.py against plain float64 loops written from Agarwal et al. (2021)'s definitions,
hand-computed cases, the bootstrap's stratification and coverage, and rliable itself where installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import stats


def reference_iqm(scores) -> float:
    """Pool every run of every task, sort, drop floor(n/4) from each end, average what is left."""
    pooled = sorted(float(v) for task in scores for v in task)
    cut = len(pooled) // 4
    middle = pooled[cut : len(pooled) - cut]
    return math.fsum(middle) / len(middle)


def reference_improvement(x, y) -> float:
    """Per task, over every pair (run of X, run of Y): 1 if X is higher, 1/2 if equal; mean over pairs, then tasks."""
    per_task = []
    for xs, ys in zip(x, y, strict=True):
        wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in xs for b in ys]
        per_task.append(math.fsum(wins) / len(wins))
    return math.fsum(per_task) / len(per_task)


def reference_profile(scores, taus) -> list[float]:
    """Per tau: per task the fraction of runs scoring above tau, averaged over tasks."""
    return [math.fsum(sum(float(v) > tau for v in task) / len(task) for task in scores) / len(scores) for tau in taus]


def ragged(rng, tasks: int, low: int = 1, high: int = 12, ties: bool = False):
    sizes = rng.integers(low, high, size=tasks)
    if ties:  # few distinct values, so ties are common
        return [rng.integers(0, 4, size=n).astype(np.float64) for n in sizes]
    return [rng.normal(size=n) for n in sizes]


def test_iqm_matches_the_definition():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = ragged(rng, int(rng.integers(1, 5)))
        assert stats.interquartile_mean(scores) == pytest.approx(reference_iqm(scores), rel=1e-12, abs=1e-12)
    assert stats.interquartile_mean([np.arange(1.0, 9.0)]) == 4.5  # middle 4 of 8
    # 5 runs: the middle 3 (scipy's trim_mean, as rliable), so one wild run does not move it.
    assert stats.interquartile_mean([np.array([0.0, 1.0, 2.0, 3.0, 100.0])]) == 2.0
    assert stats.interquartile_mean([np.array([0.0, 3.0]), np.array([1.0, 2.0])]) == 1.5  # pooled over tasks


def test_probability_of_improvement_matches_the_pairwise_count():
    rng = np.random.default_rng(1)
    for ties in (False, True):
        for _ in range(30):
            tasks = int(rng.integers(1, 4))
            x, y = ragged(rng, tasks, ties=ties), ragged(rng, tasks, ties=ties)
            assert stats.probability_of_improvement(x, y) == pytest.approx(reference_improvement(x, y), abs=1e-12)
    # Pairs (1,1) tie, (1,0), (2,1), (2,0) wins: 3.5 / 4. Swapped: 0.5 / 4.
    x, y = [np.array([1.0, 2.0])], [np.array([1.0, 0.0])]
    assert stats.probability_of_improvement(x, y) == 0.875
    assert stats.probability_of_improvement(y, x) == 0.125
    # Averaged over tasks, not over pooled pairs: a 1-run task weighs as much as a 4-run one.
    assert stats.probability_of_improvement([np.ones(1), np.zeros(4)], [np.zeros(1), np.ones(4)]) == 0.5


def test_performance_profile_matches_the_definition():
    rng = np.random.default_rng(2)
    taus = np.linspace(-2, 2, 17)
    for ties in (False, True):
        scores = ragged(rng, 3, ties=ties)
        expected = reference_profile(scores, taus)
        assert stats.performance_profile(scores, taus) == pytest.approx(expected, abs=1e-12)
    # "Above" is strict: a run scoring exactly tau is not counted at tau.
    assert list(stats.performance_profile([np.array([0.0, 1.0])], np.array([-1.0, 0.0, 1.0]))) == [1.0, 0.5, 0.0]


def test_vectorised_intervals_equal_the_slow_general_bootstrap():
    rng = np.random.default_rng(3)
    scores = ragged(rng, 3, low=3)
    fast = stats.iqm_estimate(scores, reps=400, rng=np.random.default_rng(7))
    slow = stats.bootstrap(stats.interquartile_mean, scores, reps=400, rng=np.random.default_rng(7))
    assert fast == pytest.approx(slow, abs=1e-12)
    x, y = ragged(rng, 2, low=2), ragged(rng, 2, low=2)

    def split(both):  # the same draws: x's tasks are resampled first, then y's
        return stats.probability_of_improvement(both[:2], both[2:])

    fast = stats.improvement_estimate(x, y, reps=300, rng=np.random.default_rng(8))
    slow = stats.bootstrap(split, [*x, *y], reps=300, rng=np.random.default_rng(8))
    assert fast == pytest.approx(slow, abs=1e-12)

    def difference(both):
        return reference_iqm(both[:2]) - reference_iqm(both[2:])

    fast = stats.iqm_difference_estimate(x, y, reps=300, rng=np.random.default_rng(10))
    slow = stats.bootstrap(difference, [*x, *y], reps=300, rng=np.random.default_rng(10))
    assert fast == pytest.approx(slow, abs=1e-12)
    taus = np.linspace(-1, 1, 5)
    profile, low, high = stats.profile_estimate(x, taus, reps=300, rng=np.random.default_rng(9))
    for k, tau in enumerate(taus):
        one = stats.bootstrap(lambda s, t=tau: stats.performance_profile(s, [t])[0], x, 300, np.random.default_rng(9))
        assert (profile[k], low[k], high[k]) == pytest.approx(one, abs=1e-12)


def test_the_bootstrap_is_stratified_by_task():
    # Task A scores in [0, 1] (3 runs), task B in [10, 11] (5 runs). Every stratified resample keeps
    # 3 runs of A and 5 of B, so the pooled mean stays in [50/8, 58/8]; pooling first could draw 8 of B.
    scores = [np.array([0.0, 0.5, 1.0]), np.array([10.0, 10.2, 10.5, 10.8, 11.0])]
    resampled = stats.stratified_resamples(scores, 2000, np.random.default_rng(4))
    assert [r.shape for r in resampled] == [(2000, 3), (2000, 5)]
    assert set(np.unique(resampled[0])) <= set(scores[0]) and set(np.unique(resampled[1])) <= set(scores[1])
    pooled_mean = np.concatenate(resampled, axis=1).mean(axis=1)
    assert pooled_mean.min() >= 50 / 8 and pooled_mean.max() <= 58 / 8
    estimate = stats.bootstrap(lambda s: float(np.concatenate(s).mean()), scores, 2000, np.random.default_rng(4))
    assert 50 / 8 <= estimate.low < estimate.point < estimate.high <= 58 / 8


def test_intervals_collapse_without_spread_and_cover_the_truth():
    constant = [np.full(5, 0.3)]
    assert stats.iqm_estimate(constant, reps=100) == pytest.approx((0.3, 0.3, 0.3))
    assert stats.improvement_estimate(constant, constant, reps=100) == (0.5, 0.5, 0.5)
    # Normal runs around 1.0: the IQM of a symmetric law estimates its centre; the 95 % interval
    # should hold it in about 95 % of experiments (the percentile bootstrap runs a little short at n = 20).
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(200):
        estimate = stats.iqm_estimate([rng.normal(1.0, 1.0, size=20)], reps=1000, rng=rng)
        hits += estimate.low <= 1.0 <= estimate.high
    assert 0.85 <= hits / 200 <= 0.99
    # Clearly separated cells: P(X > Y) = 1 and its interval with it.
    assert stats.improvement_estimate([np.arange(5.0) + 10], [np.arange(5.0)], reps=200) == (1.0, 1.0, 1.0)
    # A shift of 10 between two cells spread over 0-4: the IQM difference is 10, its interval holds it
    # strictly inside and (each resampled IQM lying in its cell's range) never leaves 10 +- 4.
    shifted = stats.iqm_difference_estimate([np.arange(5.0) + 10], [np.arange(5.0)], reps=2000)
    assert shifted.point == 10.0 and 6.0 < shifted.low < 10.0 < shifted.high < 14.0
    assert stats.iqm_difference_estimate(constant, constant, reps=100) == (0.0, 0.0, 0.0)


def test_point_estimates_equal_rliable():
    """Only where rliable is installed (it is not a requirement: see benchmarks/stats.py)."""
    pytest.importorskip("arch")
    metrics = pytest.importorskip("rliable.metrics")
    library = pytest.importorskip("rliable.library")
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 0.3  # [runs, tasks], rliable's layout
    columns = [x[:, k] for k in range(3)]
    assert stats.interquartile_mean(columns) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
    poi = metrics.probability_of_improvement(x, y)
    assert stats.probability_of_improvement(columns, [y[:, k] for k in range(3)]) == pytest.approx(poi, abs=1e-12)
    taus = np.linspace(-2, 2, 9)
    profiles, _ = library.create_performance_profile({"x": x}, taus, reps=10)
    assert stats.performance_profile(columns, taus) == pytest.approx(profiles["x"], abs=1e-12)
    points, intervals = library.get_interval_estimates(
        {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=20000
    )
    ours = stats.iqm_estimate(columns, reps=20000)
    assert ours.low == pytest.approx(float(intervals["x"][0, 0]), abs=0.03)
    assert ours.high == pytest.approx(float(intervals["x"][1, 0]), abs=0.03)
