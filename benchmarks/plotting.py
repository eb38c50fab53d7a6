"""Figure and table helpers shared by the benchmarks.

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so nothing touches
pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Curve = tuple[np.ndarray, np.ndarray]  # (x [N], y [N]) of one seed


def seed_band(curves: Sequence[Curve], points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median, minimum and maximum over seeds on one grid: ``(x, median, low, high)``, each ``[points]``.

    The grid runs from the latest start to the latest end; past the end of a shorter curve (a run
    stopped early) the statistics are over the seeds that reached that far, never extrapolated.
    """
    grid = np.linspace(max(float(x[0]) for x, _ in curves), max(float(x[-1]) for x, _ in curves), points)
    ys = np.stack([np.where(grid <= x[-1], np.interp(grid, x, y), np.nan) for x, y in curves])
    return grid, np.nanmedian(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    if window <= 1 or y.size == 0:
        return y
    cumsum = np.cumsum(np.insert(y.astype(np.float64), 0, 0.0))
    counts = np.minimum(np.arange(1, y.size + 1), window)
    return (cumsum[1:] - cumsum[np.arange(1, y.size + 1) - counts]) / counts


def panel_figure(panels: int, width: float, height: float, max_cols: int = 4) -> tuple[Figure, int, int]:
    """A figure for ``panels`` subplots of about ``width`` x ``height`` inches, at most ``max_cols``
    a row: ``(figure, rows, cols)``, with room at the top for a title."""
    cols = min(max_cols, max(panels, 1))
    rows = max(1, math.ceil(panels / cols))
    figure = Figure(figsize=(width * cols, height * rows + 0.5), dpi=90)
    FigureCanvasAgg(figure)
    return figure, rows, cols


def save_figure(figure: Figure, path: Path, title: str | None = None) -> Path:
    """Lay out (under ``title`` if given) and write ``figure`` as a PNG at ``path``, creating its folder."""
    if title is not None:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_curves(
    curves: Mapping[str, Sequence[Curve]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    hlines: Mapping[str, float] | None = None,
) -> Path:
    """One line per label (median over seeds) with the min-max spread over seeds shaded; saves a PNG.

    Past ten labels the colours repeat, so the next ten are dashed; with more than eight legend
    entries the legend moves beside the axes, where it hides no curve.
    """
    outside = len(curves) + len(hlines or {}) > 8
    figure = Figure(figsize=(8.4 if outside else 6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (label, seeds) in enumerate(curves.items()):
        if not seeds:
            continue
        x, median, low, high = seed_band(seeds)
        style = "-" if i < 10 else "--"
        (line,) = axes.plot(x, median, style, label=f"{label} (n={len(seeds)})", linewidth=1.4)
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    for (name, value), style in zip((hlines or {}).items(), ["--", ":", "-.", (0, (1, 3))] * 4, strict=False):
        axes.axhline(value, color="grey", linestyle=style, linewidth=0.9, label=name)
    if logy:
        axes.set_yscale("log")
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    if outside:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axes.legend(fontsize=7, ncol=2)
    return save_figure(figure, path)


def plot_histograms(samples: Mapping[str, np.ndarray], path: Path, *, title: str, xlabel: str, bins: int = 50) -> Path:
    """A grid of density histograms on ``[0, 1]``, one panel per label; saves a PNG."""
    figure, rows, cols = panel_figure(len(samples), 2.6, 2.0)
    for i, (label, values) in enumerate(samples.items()):
        axes = figure.add_subplot(rows, cols, i + 1)
        axes.hist(np.asarray(values).ravel(), bins=bins, range=(0.0, 1.0), density=True, color="tab:blue")
        axes.set_title(label, fontsize=8)
        axes.set_xlabel(xlabel, fontsize=7)
        axes.tick_params(labelsize=6)
    return save_figure(figure, path, title)


def format_cell(value: object) -> str:
    """Table text for one value: floats to 4 significant digits, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """The same rows as CSV (raw values; None as empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path
