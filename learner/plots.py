"""A PNG of a run's main curves, written into the run folder when training ends (``curves.png``).

Read back from the run's TensorBoard event files, so it covers resumed runs too and can be
redrawn for any run: ``python -m learner.plots runs/<name>``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from learner import metrics as m  # noqa: E402

CURVES_FILE = "curves.png"
PANELS = (
    (m.EPISODE_RETURN, "episode return"),
    (m.POLICY_ENTROPY, "policy entropy"),
    (m.LOSS_BASELINE, "baseline loss"),
    (m.GATES_BINARY_FRAC, "near-binary gate fraction"),
    (m.PERF_ENV_STEPS_PER_S, "env steps / s"),
    (m.ACTORS_POLICY_LAG, "policy lag (versions)"),
)


def event_files(run_dir: Path, histograms: bool = False) -> Iterator[EventAccumulator]:
    """The run's event files, loaded, oldest first (a resumed run adds one per start).

    Every scalar is kept; histograms only with ``histograms`` (every one of them: the accumulator's
    default keeps a single one, which loses the first, the gates at initialisation)."""
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        guidance = {"scalars": 0, "histograms": 0} if histograms else {"scalars": 0}
        accumulator = EventAccumulator(str(path), size_guidance=guidance)
        accumulator.Reload()
        yield accumulator


def read_scalars(
    run_dir: Path, loaded: list[EventAccumulator] | None = None
) -> dict[str, tuple[list[int], list[float]]]:
    """``{tag: (steps, values)}`` over every event file of the run, later files overriding earlier steps.

    ``loaded``: the run's ``event_files``, already loaded by a caller that reads them for more than
    scalars (parsing is most of the time: about a second per few MB of events)."""
    series: dict[str, dict[int, float]] = {}
    for accumulator in event_files(run_dir) if loaded is None else loaded:
        for tag in accumulator.Tags()["scalars"]:
            series.setdefault(tag, {}).update((e.step, e.value) for e in accumulator.Scalars(tag))
    return {tag: (sorted(points), [points[s] for s in sorted(points)]) for tag, points in series.items()}


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (what a reader expects of a noisy return curve)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(run_dir: Path) -> Path:
    """Draw the main curves of ``run_dir`` into ``run_dir/curves.png`` and return its path."""
    run_dir = Path(run_dir)
    scalars = read_scalars(run_dir)
    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5), constrained_layout=True)
    for ax, (tag, title) in zip(axes.flat, PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        if tag not in scalars:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            continue
        steps, values = scalars[tag]
        ax.plot(steps, values, alpha=0.3, color="tab:blue")
        ax.plot(steps, smooth(values, max(1, len(values) // 50)), color="tab:blue")
    figure.suptitle(run_dir.name)
    path = run_dir / CURVES_FILE
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


if __name__ == "__main__":
    for folder in sys.argv[1:] or ["."]:
        print(plot_run(Path(folder)))
