"""The memory suite's statistics, timescale and wall-time sections (``statistics.md`` and PNGs).

Input: the suite's per-run rows (``benchmarks/memory_suite.py:run_metrics``), each with ``task``,
``cell`` (the label: cell, and the setting in brackets when there is one), ``seed``, ``score``
(normalised final return), ``solved``, ``wall_time_s`` and ``timescales`` (``RunTimescales`` or
None). Every row is a started run; failed and short runs are in with the score they reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import stats
from benchmarks.plotting import markdown_table, panel_figure, save_figure
from benchmarks.timescales import QUANTILE, plot_timescales

ALL_TASKS = "all tasks"
PROFILE_TAUS = np.linspace(-0.5, 1.25, 141)  # normalised score: 0 = memoryless best, 1 = maximum


def value_sets(
    rows: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float]
) -> dict[str, dict[str, np.ndarray]]:
    """``{task: {cell: value(row) [runs]}}`` in first-seen order."""
    out: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        out.setdefault(row["task"], {}).setdefault(row["cell"], []).append(value(row))
    return {task: {cell: np.asarray(v) for cell, v in cells.items()} for task, cells in out.items()}


def score_sets(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """``{task: {cell: scores [runs]}}`` in first-seen order."""
    return value_sets(rows, lambda row: float(row["score"]))


# A run that never reached the solved threshold ranks behind every run that did and ties with the others
# that did not: any finite stand-in below every negated step count gives the same probabilities.
NEVER_SOLVED = -1e30


def speed_sets(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """``{task: {cell: -(env steps to the solved threshold) [runs]}}``, higher is sooner, a miss
    ``NEVER_SOLVED``: the comparison that still separates cells once every run ends at the ceiling."""

    def sooner(row: dict[str, Any]) -> float:
        steps = row.get("steps_to_threshold")
        return NEVER_SOLVED if steps is None else -float(steps)

    return value_sets(rows, sooner)


def common_tasks(sets: Mapping[str, Mapping[str, np.ndarray]], cells: Sequence[str]) -> list[str]:
    """The tasks where every one of ``cells`` has runs: an aggregate over them compares like with like."""
    return [task for task, by_cell in sets.items() if all(c in by_cell for c in cells)]


def iqm_rows(sets: Mapping[str, Mapping[str, np.ndarray]], reps: int) -> list[list[object]]:
    """Per task and cell, then per cell over the tasks every cell ran: runs, IQM and its 95 % interval."""
    table = []
    for task, by_cell in sets.items():
        for cell, scores in by_cell.items():
            estimate = stats.iqm_estimate([scores], reps=reps)
            table.append([task, cell, scores.size, *estimate, float(np.median(scores))])
    cells = list(dict.fromkeys(c for by_cell in sets.values() for c in by_cell))
    tasks = common_tasks(sets, cells)
    if len(tasks) > 1:
        for cell in cells:
            scores = [sets[t][cell] for t in tasks]
            estimate = stats.iqm_estimate(scores, reps=reps)
            table.append(
                [ALL_TASKS, cell, sum(s.size for s in scores), *estimate, float(np.median(np.concatenate(scores)))]
            )
    return table


def pair_groups(
    sets: Mapping[str, Mapping[str, np.ndarray]], pairs: Sequence[tuple[str, str]]
) -> Iterator[tuple[str, str, str, str, list[np.ndarray], list[np.ndarray]]]:
    """For each pair, per task both cells ran and then over those tasks (when more than one): the row's
    name, its run counts, and X's and Y's values, one array per task."""
    for x, y in pairs:
        tasks = common_tasks(sets, (x, y))
        groups = [([t], f"{sets[t][x].size} vs {sets[t][y].size}", t) for t in tasks]
        if len(tasks) > 1:
            groups.append((tasks, f"{len(tasks)} tasks", ALL_TASKS))
        for group, runs, name in groups:
            yield x, y, name, runs, [sets[t][x] for t in group], [sets[t][y] for t in group]


def improvement_rows(
    sets: Mapping[str, Mapping[str, np.ndarray]], pairs: Sequence[tuple[str, str]], reps: int
) -> list[list[object]]:
    """``P(X > Y)`` and the effect size ``IQM(X) - IQM(Y)``, each with its 95 % interval, per task for
    each pair both cells ran, then over the tasks both ran (resampled within each task)."""
    return [[name, f"P({x} > {y})", runs, *stats.improvement_estimate(xs, ys, reps=reps),
             *stats.iqm_difference_estimate(xs, ys, reps=reps)]
            for x, y, name, runs, xs, ys in pair_groups(sets, pairs)]  # fmt: skip


def sooner_rows(
    speed: Mapping[str, Mapping[str, np.ndarray]], pairs: Sequence[tuple[str, str]], reps: int
) -> list[list[object]]:
    """P(X reaches the solved threshold in fewer env steps than Y), with its 95 % interval and how many
    runs of each reached it, grouped as ``improvement_rows``."""
    return [[name, f"P({x} sooner than {y})", runs,
             f"{sum(int((a > NEVER_SOLVED).sum()) for a in xs)} vs {sum(int((b > NEVER_SOLVED).sum()) for b in ys)}",
             *stats.improvement_estimate(xs, ys, reps=reps)]
            for x, y, name, runs, xs, ys in pair_groups(speed, pairs)]  # fmt: skip


def effect_series(
    poi: Sequence[Sequence[Any]], delays: Mapping[str, int]
) -> dict[tuple[str, str], list[tuple[int, Sequence[Any]]]]:
    """``{(comparison, task family): [(delay, improvement row), ...]}`` sorted by delay, for the
    comparisons made at two delays or more of one family (``PassiveMatch-d100`` is family
    ``PassiveMatch``): the data of "does the advantage grow with the delay?"."""
    series: dict[tuple[str, str], list[tuple[int, Sequence[Any]]]] = {}
    for row in poi:
        if row[0] in delays:
            series.setdefault((row[1], row[0].rsplit("-d", 1)[0]), []).append((delays[row[0]], row))
    return {key: sorted(points, key=lambda p: p[0]) for key, points in series.items() if len(points) > 1}


def plot_effect_by_delay(poi: Sequence[Sequence[Any]], delays: Mapping[str, int], path: Path) -> Path | None:
    """P(X > Y) and IQM(X) - IQM(Y), with their 95 % intervals, against the delay: one line per
    comparison and task family. None (no figure) when no comparison was made at two delays."""
    series = effect_series(poi, delays)
    if not series:
        return None
    figure, rows, cols = panel_figure(2, 4.8, 3.4, max_cols=2)
    panels = ((3, "probability of improvement P(X > Y)", 0.5), (6, "effect size IQM(X) - IQM(Y)", 0.0))
    for i, (column, label, no_effect) in enumerate(panels):
        axes = figure.add_subplot(rows, cols, i + 1)
        for (comparison, family), points in series.items():
            x = np.array([d for d, _ in points], np.float64)
            y, low, high = (np.array([float(r[column + k]) for _, r in points]) for k in range(3))
            axes.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, linewidth=1.2,
                          label=f"{family}: {comparison}")  # fmt: skip
        axes.axhline(no_effect, color="grey", linestyle=":", linewidth=0.8)
        axes.set_xscale("log")
        axes.minorticks_off()  # the delays are the ticks
        ticks = sorted({d for points in series.values() for d, _ in points})
        axes.set_xticks(ticks, [str(t) for t in ticks])
        axes.set(xlabel="delay (steps)", ylabel=label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
    return save_figure(figure, path, title="Does the advantage grow with the delay? (95 % bootstrap intervals)")


def plot_profiles(sets: Mapping[str, Mapping[str, np.ndarray]], path: Path, reps: int) -> Path:
    """Performance profiles: one panel per task (and one over the common tasks), the fraction of runs
    whose normalised score exceeds tau, with its pointwise 95 % band; saves a PNG."""
    panels = {task: {c: [s] for c, s in by_cell.items()} for task, by_cell in sets.items()}
    cells = list(dict.fromkeys(c for by_cell in sets.values() for c in by_cell))
    tasks = common_tasks(sets, cells)
    if len(tasks) > 1:
        panels[ALL_TASKS] = {c: [sets[t][c] for t in tasks] for c in cells}
    figure, rows, cols = panel_figure(len(panels), 4.2, 3.0, max_cols=3)
    for i, (task, by_cell) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, cols, i + 1)
        for j, (cell, scores) in enumerate(by_cell.items()):
            profile, low, high = stats.profile_estimate(scores, PROFILE_TAUS, reps=reps)
            (line,) = axes.plot(PROFILE_TAUS, profile, "-" if j < 10 else "--", label=cell, linewidth=1.2)
            axes.fill_between(PROFILE_TAUS, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        axes.axvline(0.0, color="grey", linestyle=":", linewidth=0.8)
        axes.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
        axes.set(title=task, xlabel="normalised score tau", ylabel="fraction of runs > tau", ylim=(-0.02, 1.02))
        axes.title.set_fontsize(9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
    return save_figure(figure, path)


def timescale_rows(rows: Sequence[dict[str, Any]], delays: Mapping[str, int]) -> list[list[object]]:
    """Per run with gate histograms: solved or not, score, the fraction of activations with timescale
    >= the delay and the QUANTILE timescale, first and last logged."""
    table = []
    order = {key: i for i, key in enumerate(dict.fromkeys((r["task"], r["cell"]) for r in rows))}
    for r in sorted(rows, key=lambda r: (order[r["task"], r["cell"]], r["seed"])):  # grouped by cell
        ts = r.get("timescales")
        if ts is not None:
            table.append([r["task"], delays[r["task"]], r["cell"], r["seed"], "yes" if r["solved"] else "no",
                          r["score"], ts.first.step, ts.reach_first, ts.quantile_first, ts.last.step,
                          ts.reach_last, ts.quantile_last])  # fmt: skip
    return table


def reach_versus_success(rows: Sequence[dict[str, Any]], reps: int) -> list[list[object]]:
    """Per task: do the solved runs have more timescale mass at the delay than the unsolved ones?

    ``P(reach of a solved run > reach of an unsolved run)`` over the runs of every recurrent cell
    (the area under the ROC curve of "reach" as a predictor of success; 0.5: no relation, 1: every
    solved run reaches further than every unsolved one), with its bootstrap interval."""
    table = []
    for task in dict.fromkeys(r["task"] for r in rows):
        runs = [r for r in rows if r["task"] == task and r.get("timescales") is not None]
        solved = np.array([r["timescales"].reach_last for r in runs if r["solved"]])
        failed = np.array([r["timescales"].reach_last for r in runs if not r["solved"]])
        estimate = stats.improvement_estimate([solved], [failed], reps=reps) if solved.size and failed.size else None
        table.append([task, solved.size, failed.size, float(np.median(solved)) if solved.size else None,
                      float(np.median(failed)) if failed.size else None, *(estimate or (None, None, None))])  # fmt: skip
    return table


def wall_time_rows(rows: Sequence[dict[str, Any]]) -> list[list[object]]:
    """Per task: runs, the training hours of all runs added up (the serial cost of the task) and the
    median, minimum and maximum minutes of one run; runs without a logged time are counted apart."""
    table = []
    for task in dict.fromkeys(r["task"] for r in rows):
        seconds = [r["wall_time_s"] for r in rows if r["task"] == task and r["wall_time_s"] is not None]
        runs = sum(r["task"] == task for r in rows)
        minutes = np.asarray(seconds) / 60
        table.append([task, runs, len(seconds), sum(seconds) / 3600 if seconds else None,
                      *((float(np.median(minutes)), float(minutes.min()), float(minutes.max())) if seconds else (None,) * 3)])  # fmt: skip
    return table


IQM_HEADERS = ["task", "cell", "runs", "IQM score", "95 % CI low", "95 % CI high", "median score"]
POI_HEADERS = ["task", "comparison", "runs", "probability", "95 % CI low", "95 % CI high", "IQM X - IQM Y",
               "95 % CI low", "95 % CI high"]  # fmt: skip
SOONER_HEADERS = ["task", "comparison", "runs", "runs that reached it", "probability", "95 % CI low", "95 % CI high"]
TIMESCALE_HEADERS = ["task", "delay", "cell", "seed", "solved", "score", "first step", "reach (first)",
                     f"p{round(QUANTILE * 100)} timescale (first)", "last step", "reach (last)",
                     f"p{round(QUANTILE * 100)} timescale (last)"]  # fmt: skip
REACH_HEADERS = ["task", "solved runs", "unsolved runs", "reach (last) median, solved", "unsolved",
                 "P(solved reach > unsolved)", "95 % CI low", "95 % CI high"]  # fmt: skip
WALL_HEADERS = ["task", "runs", "runs timed", "training hours, all runs", "minutes per run median", "min", "max"]


def statistics_section(
    rows: Sequence[dict[str, Any]],
    pairs: Sequence[tuple[str, str]],
    delays: Mapping[str, int],
    out_dir: Path,
    reps: int = stats.DEFAULT_REPS,
) -> str:
    """Write ``profiles.png`` and ``timescales_<task>.png`` into ``out_dir``; return the markdown."""
    sets = score_sets(rows)
    parts = ["## Statistics (Agarwal et al. 2021)\n",
             "Score: (final return - memoryless best) / (maximum - memoryless best); 0 is what a policy "
             "that forgets the cue gets, 1 the maximum. Every started run counts, stopped or failed ones "
             "with the return they reached (none logged: 0). IQM: mean of the middle half of the runs; "
             f"intervals: 95 % percentile bootstrap, {reps} resamples, runs resampled within each task.\n",
             markdown_table(IQM_HEADERS, iqm_rows(sets, reps))]  # fmt: skip
    poi = improvement_rows(sets, pairs, reps)
    if poi:
        parts += ["\nProbability of improvement, P(X > Y) + 0.5 P(X = Y) for a random run of each, and the "
                  "difference of the two IQM scores (the effect size):\n",
                  markdown_table(POI_HEADERS, poi)]  # fmt: skip
        figure = plot_effect_by_delay(poi, delays, out_dir / "effect_by_delay.png")
        if figure is not None:
            parts.append(f"\n![the advantage against the delay]({figure.name})\n")
        parts += ["\nSooner: P(X reaches the solved threshold in fewer env steps than Y) + 0.5 P(neither "
                  "reaches it) for a random run of each; it still separates cells where every run ends at "
                  "the ceiling:\n",
                  markdown_table(SOONER_HEADERS, sooner_rows(speed_sets(rows), pairs, reps))]  # fmt: skip
    if sets:
        parts.append(f"\n![performance profiles]({plot_profiles(sets, out_dir / 'profiles.png', reps).name})\n")
    parts.append(timescale_section(rows, delays, out_dir, reps))
    parts += ["\n## Wall time\n", markdown_table(WALL_HEADERS, wall_time_rows(rows))]
    return "\n".join(parts)


def timescale_section(rows: Sequence[dict[str, Any]], delays: Mapping[str, int], out_dir: Path, reps: int) -> str:
    """Forget-gate timescales per run, whether success goes with reach, and one figure per task."""
    table = timescale_rows(rows, delays)
    if not table:
        return "\n## Forget-gate timescales\n\nNo run logged gate histograms.\n"
    parts = ["\n## Forget-gate timescales\n",
             "Reach: the fraction of the effective forget gate's activations (steps x sequences x units of "
             "one batch) whose timescale 1/(1-g) is at least the delay; first and last logged histograms.\n",
             markdown_table(TIMESCALE_HEADERS, table), "\n",
             markdown_table(REACH_HEADERS, reach_versus_success(rows, reps))]  # fmt: skip
    for task, delay in delays.items():
        cells: dict[str, list] = {}
        for r in rows:
            if r["task"] == task and r.get("timescales") is not None:
                cells.setdefault(r["cell"], []).append(r["timescales"])
        if cells:
            path = plot_timescales(
                cells, delay, out_dir / f"timescales_{task}.png", title=f"{task}: forget-gate timescales"
            )
            parts.append(f"\n![{task} timescales]({path.name})\n")
    return "\n".join(parts)
