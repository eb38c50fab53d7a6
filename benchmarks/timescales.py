"""Forget-gate timescales read back from a run's TensorBoard histograms (Gu et al. 2020, Sec. 5).

The learner logs ``gates/timescale_log10``, ``log10(1 / (1 - g))`` of the first core layer's
effective forget gate (``learner/gate_stats.py``), every ``run.gate_stats_every_updates`` updates,
over all the activations of one batch (``[T, B, H]``: steps x sequences x units). A unit whose gate
sits at g keeps a fraction ``g^d = exp(-d / tau)`` (roughly) of its cell after ``d`` steps, with
``tau = 1 / (1 - g)``: to carry a cue over a delay of ``d`` steps, ``tau`` must reach ``d``.

TensorBoard stores a histogram, not the values: buckets ``[edge_k, edge_k+1)`` with counts
(exponential edges 10 % apart, so about 0.04 in log10). Within a bucket the values are taken as
uniform; the outermost edges are clipped to the logged minimum and maximum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks.plotting import panel_figure, save_figure
from learner.plots import event_files

TIMESCALE_TAG = "gates/timescale_log10"  # learner/gate_stats.py: the first layer's effective forget gate
QUANTILE = 0.9  # the reported quantile of the timescale distribution


class Histogram(NamedTuple):
    """One logged histogram: ``counts [K]`` over buckets ``[edges[k], edges[k+1])``, ``edges [K+1]``."""

    step: int
    edges: np.ndarray
    counts: np.ndarray


def from_proto(step: int, proto) -> Histogram:
    """A TensorBoard ``HistogramValue`` (``bucket_limit``: upper edges; ``bucket``: counts) as a Histogram.

    Bucket k spans ``[limit[k-1], limit[k])``; the first reaches down to the logged minimum and the
    last stops at the logged maximum, which keeps a value's mass where it was."""
    limits = np.asarray(proto.bucket_limit, np.float64)
    counts = np.asarray(proto.bucket, np.float64)
    edges = np.clip(np.concatenate([[proto.min], limits]), proto.min, proto.max)
    return Histogram(step, edges, counts)


def read_histograms(run_dir: Path, tag: str = TIMESCALE_TAG, loaded: list | None = None) -> list[Histogram]:
    """Every logged histogram of ``tag``, by step; a resumed run's later file wins at a repeated step.
    ``loaded``: the run's ``event_files(run_dir, histograms=True)`` if the caller has them already."""
    by_step: dict[int, Histogram] = {}
    for accumulator in event_files(run_dir, histograms=True) if loaded is None else loaded:
        if tag in accumulator.Tags()["histograms"]:
            by_step.update((e.step, from_proto(e.step, e.histogram_value)) for e in accumulator.Histograms(tag))
    return [by_step[s] for s in sorted(by_step)]


def cdf(hist: Histogram, x: np.ndarray | float) -> np.ndarray:
    """The fraction of the histogram's mass below ``x`` (piecewise linear between edges)."""
    total = hist.counts.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(hist.counts)]) / (total if total > 0 else 1.0)
    return np.interp(x, hist.edges, cumulative, left=0.0, right=1.0)


def fraction_at_least(hist: Histogram, log10_value: float) -> float:
    """The fraction of gate activations whose log10 timescale is at least ``log10_value``."""
    return float(1.0 - cdf(hist, log10_value))


def quantile(hist: Histogram, q: float) -> float:
    """The ``q`` quantile of the histogram's values (inverse of ``cdf``; flat stretches skipped)."""
    cumulative = np.concatenate([[0.0], np.cumsum(hist.counts)]) / hist.counts.sum()
    k = int(np.searchsorted(cumulative, q, side="left"))
    k = min(max(k, 1), len(cumulative) - 1)
    low, high = cumulative[k - 1], cumulative[k]
    share = 0.0 if high <= low else (q - low) / (high - low)
    return float(hist.edges[k - 1] + share * (hist.edges[k] - hist.edges[k - 1]))


def density(hist: Histogram, grid: np.ndarray) -> np.ndarray:
    """``[len(grid) - 1]``: the mass in each bin of ``grid`` divided by the bin width (integrates to 1),
    so that histograms with different buckets can be averaged."""
    return np.diff(cdf(hist, grid)) / np.diff(grid)


class RunTimescales(NamedTuple):
    """The first and the last logged timescale histograms of one run, and how far they reach."""

    first: Histogram
    last: Histogram
    reach_first: float  # fraction of activations with timescale >= the delay
    reach_last: float
    quantile_first: float  # QUANTILE of the timescale, in steps
    quantile_last: float


def run_timescales(run_dir: Path, delay: int, loaded: list | None = None) -> RunTimescales | None:
    """The run's timescales against ``delay``, or None when it logged none (the memoryless control)."""
    hists = read_histograms(run_dir, loaded=loaded)
    if not hists:
        return None
    first, last = hists[0], hists[-1]
    at = np.log10(max(delay, 1))
    return RunTimescales(first, last, fraction_at_least(first, at), fraction_at_least(last, at),
                         10 ** quantile(first, QUANTILE), 10 ** quantile(last, QUANTILE))  # fmt: skip


def plot_timescales(
    cells: Mapping[str, Sequence[RunTimescales]], delay: int, path: Path, *, title: str, top: float = 4.0
) -> Path:
    """One panel per cell: the density of log10 timescales, first logged histogram (dashed) and last
    (solid), each the mean of the runs' densities, the delay marked; saves a PNG."""
    grid = np.linspace(0.0, max(top, np.log10(max(delay, 1)) + 0.5), 121)
    centres = (grid[1:] + grid[:-1]) / 2
    figure, rows, cols = panel_figure(len(cells), 3.0, 2.3)
    for i, (label, runs) in enumerate(cells.items()):
        axes = figure.add_subplot(rows, cols, i + 1)
        for which, style in (("first", "--"), ("last", "-")):
            mean = np.mean([density(getattr(r, which), grid) for r in runs], axis=0)
            low, high = min(getattr(r, which).step for r in runs), max(getattr(r, which).step for r in runs)
            steps = f"step {low:,}" if low == high else f"steps {low:,}–{high:,}"
            axes.plot(centres, mean, style, label=f"{which} ({steps})", linewidth=1.2)
        axes.axvline(np.log10(max(delay, 1)), color="grey", linestyle=":", label=f"delay {delay}")
        cell, _, setting = label.partition(" [")  # a setting on a line of its own: one line overruns the panel
        axes.set_title(f"{cell} (n={len(runs)})" + (f"\n[{setting}" if setting else ""), fontsize=8)
        axes.set_xlabel("log10 timescale 1/(1-g), steps", fontsize=7)
        axes.tick_params(labelsize=6)
        axes.legend(fontsize=6)
    return save_figure(figure, path, title)
