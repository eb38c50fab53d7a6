"""Forget-gate timescales read back from TensorBoard histograms: bucket arithmetic against hand-computed
values, histograms written by the project's own logger, and a resumed run's event files."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import timescales as ts
from learner.tensorboard import TensorBoardLogger

TAG = ts.TIMESCALE_TAG


def test_bucket_arithmetic_by_hand():
    hist = ts.Histogram(0, np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0]))
    # Uniform inside buckets: above 1.5 lies half of the second bucket, 1.5 of 4.
    assert ts.fraction_at_least(hist, 1.5) == pytest.approx(0.375)
    assert ts.fraction_at_least(hist, -1.0) == 1.0 and ts.fraction_at_least(hist, 3.0) == 0.0
    assert ts.quantile(hist, 0.5) == pytest.approx(1 + (0.5 - 0.25) / 0.75)
    assert ts.quantile(hist, 0.25) == pytest.approx(1.0) and ts.quantile(hist, 1.0) == pytest.approx(2.0)
    for q in (0.1, 0.3, 0.6, 0.95):  # the quantile inverts the CDF
        assert ts.cdf(hist, ts.quantile(hist, q)) == pytest.approx(q)
    grid = np.linspace(-1.0, 3.0, 41)
    assert np.sum(ts.density(hist, grid) * np.diff(grid)) == pytest.approx(1.0)


def test_empty_buckets_are_skipped_by_the_quantile():
    hist = ts.Histogram(0, np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 0.0, 2.0]))
    assert ts.quantile(hist, 0.5) == pytest.approx(1.0)  # the median sits at the end of the first bucket
    assert ts.quantile(hist, 0.75) == pytest.approx(2.5)


def test_from_proto_clips_the_outer_buckets_to_the_logged_range():
    # TensorBoard's buckets: upper limits; the last reaches past the maximum, the first is empty.
    proto = SimpleNamespace(min=0.5, max=2.6, bucket_limit=[0.47, 1.0, 2.0, 3.0], bucket=[0.0, 2.0, 1.0, 1.0])
    hist = ts.from_proto(5, proto)
    assert hist.step == 5 and list(hist.edges) == [0.5, 0.5, 1.0, 2.0, 2.6]
    assert ts.quantile(hist, 1.0) == pytest.approx(2.6) and ts.fraction_at_least(hist, 2.3) == pytest.approx(0.125)


def write_timescales(run_dir, values_by_step):
    logger = TensorBoardLogger(run_dir)
    for step, values in values_by_step.items():
        logger.histograms({TAG: np.asarray(values, np.float32)}, step)
    logger.close()


def test_logged_histograms_read_back_close_to_the_values(tmp_path):
    rng = np.random.default_rng(0)
    early, late = rng.uniform(0.0, 1.0, size=20_000), rng.uniform(0.0, 3.0, size=20_000)
    write_timescales(tmp_path, {100: early, 200: rng.uniform(size=50), 300: late})
    hists = ts.read_histograms(tmp_path)
    assert [h.step for h in hists] == [100, 200, 300]
    assert hists[0].counts.sum() == 20_000
    # Buckets are about 10 % wide in log10 timescale: the read-back figures are that close.
    assert ts.fraction_at_least(hists[-1], 2.0) == pytest.approx(np.mean(late >= 2.0), abs=0.01)
    assert ts.quantile(hists[-1], 0.9) == pytest.approx(np.quantile(late, 0.9), abs=0.05)
    run = ts.run_timescales(tmp_path, delay=100)
    assert run.first.step == 100 and run.last.step == 300
    assert run.reach_first == 0.0 and run.reach_last == pytest.approx(1 / 3, abs=0.01)
    assert run.quantile_last == pytest.approx(10 ** np.quantile(late, 0.9), rel=0.12)
    assert ts.run_timescales(tmp_path / "nothing", 10) is None


def test_a_resumed_run_reads_both_files_the_later_winning(tmp_path):
    write_timescales(tmp_path, {100: np.zeros(10), 200: np.zeros(10)})
    first = next(tmp_path.glob("events.*"))
    os.utime(first, (1, 1))
    write_timescales(tmp_path, {200: np.full(10, 2.0), 300: np.full(10, 3.0)})
    hists = ts.read_histograms(tmp_path)
    assert [h.step for h in hists] == [100, 200, 300]
    assert ts.quantile(hists[1], 0.5) == pytest.approx(2.0)


def test_the_figure_is_drawn(tmp_path):
    write_timescales(tmp_path / "a", {10: np.zeros(5) + 0.3, 20: np.linspace(0, 2, 50)})
    run = ts.run_timescales(tmp_path / "a", 30)
    path = ts.plot_timescales({"lstm/ur": [run, run], "lstm/standard": [run]}, 30, tmp_path / "t.png", title="t")
    assert path.stat().st_size > 1000
