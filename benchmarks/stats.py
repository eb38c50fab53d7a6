"""Aggregate statistics over runs, after Agarwal et al. (NeurIPS 2021, "Deep RL at the Edge of the
Statistical Precipice"; the ``rliable`` library): interquartile mean, stratified bootstrap confidence
intervals, performance profiles and the probability of improvement.

Scores come per task as one array of runs each, ``Sequence[np.ndarray]`` (``[tasks][runs_k]``), so
tasks may hold different numbers of runs (a run missing from one task does not drop the others).
With equal run counts this is rliable's ``[runs, tasks]`` matrix, column by column, and the point
estimates equal rliable's (``tests/test_stats.py`` checks both against plain loops, and against
rliable itself where it is installed).

Why not rliable itself: ``pip install rliable`` (1.2.0) pulls arch, statsmodels, pandas and seaborn
into a project that uses none of them, and with the pandas it resolves to (3.x) ``import rliable``
fails inside arch 7.2 (``deprecate_kwarg()`` changed signature); it works only with ``pandas<3``
pinned. These estimators are a few lines of numpy each.

One difference from rliable, on purpose: the probability of improvement resamples the runs of X and
of Y independently (they are independent runs), where rliable resamples both with the same indices,
which requires equal run counts and treats run i of X and run i of Y as a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

Scores = Sequence[np.ndarray]  # [tasks][runs of that task]
CONFIDENCE = 0.95
DEFAULT_REPS = 5000


class Estimate(NamedTuple):
    """A point estimate and its bootstrap confidence interval."""

    point: float
    low: float
    high: float


def interquartile_mean(scores: Scores) -> float:
    """The mean of the middle half of all runs of all tasks pooled, ``floor(n/4)`` cut from each end.

    That is ``scipy.stats.trim_mean(x, 0.25)``, which rliable's ``aggregate_iqm`` calls: with 5 runs
    it averages the middle 3, with 8 the middle 4. Robust to a few failed or lucky runs, yet uses
    more of them than the median.
    """
    return float(_trimmed_mean(np.concatenate([np.asarray(s, np.float64) for s in scores])[None, :])[0])


def _trimmed_mean(samples: np.ndarray) -> np.ndarray:
    """Row-wise IQM of ``samples [reps, n]`` -> ``[reps]`` (sorting each row: vectorised over reps)."""
    n = samples.shape[1]
    cut = n // 4
    return np.sort(samples, axis=1)[:, cut : n - cut].mean(axis=1)


def probability_of_improvement(x: Scores, y: Scores) -> float:
    """``P(X > Y) + 0.5 P(X = Y)`` for a random run of X against a random run of Y, per task, averaged
    over tasks: the Mann-Whitney U statistic divided by ``n_x n_y`` (Agarwal et al. 2021, Sec. 4.3)."""
    return float(
        np.mean([_pairwise_improvement(np.asarray(a)[None], np.asarray(b)[None])[0] for a, b in zip(x, y, strict=True)])
    )


def _pairwise_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x [reps, n]``, ``y [reps, m]`` -> ``[reps]``: the fraction of pairs with x > y, ties counting half."""
    diff = x[:, :, None] - y[:, None, :]
    return ((diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))).astype(np.float64)


def performance_profile(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """``[len(taus)]``: the fraction of runs scoring above each tau, per task, averaged over tasks.

    rliable's run-score distribution (``scores > tau`` over the ``[runs, tasks]`` matrix); averaging
    per task first gives each task the same weight when run counts differ.
    """
    taus = np.asarray(taus, np.float64)
    return np.mean([(np.asarray(s, np.float64)[:, None] > taus[None, :]).mean(axis=0) for s in scores], axis=0)


def stratified_resamples(scores: Scores, reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``[tasks][reps, runs_k]``: each task's runs drawn with replacement, within that task only.

    Stratified (Agarwal et al. 2021, Sec. 4.1): every bootstrap sample keeps each task's number of
    runs, so a statistic over several tasks varies only with the runs, never with how many of each
    task happened to be drawn.
    """
    out = []
    for task_scores in scores:
        task_scores = np.asarray(task_scores, np.float64)
        out.append(task_scores[rng.integers(0, task_scores.size, size=(reps, task_scores.size))])
    return out


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval (rliable's default method): the central ``confidence`` of ``samples``."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def iqm_estimate(
    scores: Scores, reps: int = DEFAULT_REPS, rng: np.random.Generator | None = None, confidence: float = CONFIDENCE
) -> Estimate:
    """IQM over all runs of all tasks with its stratified bootstrap interval."""
    rng = rng if rng is not None else np.random.default_rng(0)
    samples = _trimmed_mean(np.concatenate(stratified_resamples(scores, reps, rng), axis=1))
    return Estimate(interquartile_mean(scores), *percentile_interval(samples, confidence))


def improvement_estimate(
    x: Scores,
    y: Scores,
    reps: int = DEFAULT_REPS,
    rng: np.random.Generator | None = None,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """``probability_of_improvement(x, y)`` with a bootstrap interval; X's and Y's runs resampled
    independently, each within its task."""
    return _two_cell_estimate(
        probability_of_improvement(x, y),
        lambda xs, ys: np.mean([_pairwise_improvement(a, b) for a, b in zip(xs, ys, strict=True)], axis=0),
        x, y, reps, rng, confidence,
    )  # fmt: skip


def iqm_difference_estimate(
    x: Scores,
    y: Scores,
    reps: int = DEFAULT_REPS,
    rng: np.random.Generator | None = None,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """``IQM(X) - IQM(Y)``, the effect size in score units, with a bootstrap interval; X's and Y's runs
    resampled independently, each within its task (the draws ``improvement_estimate`` makes). An
    interval that excludes 0 says the two cells differ by more than their run-to-run spread."""
    return _two_cell_estimate(
        interquartile_mean(x) - interquartile_mean(y),
        lambda xs, ys: _trimmed_mean(np.concatenate(xs, axis=1)) - _trimmed_mean(np.concatenate(ys, axis=1)),
        x, y, reps, rng, confidence,
    )  # fmt: skip


def _two_cell_estimate(
    point: float,
    statistic: Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray],
    x: Scores,
    y: Scores,
    reps: int,
    rng: np.random.Generator | None,
    confidence: float,
) -> Estimate:
    """``point`` with the interval of ``statistic(xs, ys) -> [reps]`` over X's and Y's runs resampled
    independently, each within its task (X's draws first, then Y's, from one generator)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    xs, ys = stratified_resamples(x, reps, rng), stratified_resamples(y, reps, rng)
    return Estimate(point, *percentile_interval(statistic(xs, ys), confidence))


def profile_estimate(
    scores: Scores,
    taus: np.ndarray,
    reps: int = DEFAULT_REPS,
    rng: np.random.Generator | None = None,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, low, high)``, each ``[len(taus)]``: the performance profile and its pointwise interval."""
    rng = rng if rng is not None else np.random.default_rng(0)
    taus = np.asarray(taus, np.float64)
    resampled = stratified_resamples(scores, reps, rng)
    samples = np.mean([(r[:, :, None] > taus).mean(axis=1) for r in resampled], axis=0)  # [reps, taus]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return performance_profile(scores, taus), low, high


def bootstrap(
    statistic: Callable[[Scores], float],
    scores: Scores,
    reps: int = DEFAULT_REPS,
    rng: np.random.Generator | None = None,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Any statistic of ``scores`` with its stratified bootstrap interval, one call per resample (slow,
    general: for statistics without a vectorised form, and as the tests' reference)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    resampled = stratified_resamples(scores, reps, rng)
    samples = np.array([statistic([r[i] for r in resampled]) for i in range(reps)])
    return Estimate(float(statistic(scores)), *percentile_interval(samples, confidence))
