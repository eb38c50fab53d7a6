"""The reinforcement-learning memory suite: ``run_impala.py`` over tasks x cells x seeds.

    python -m benchmarks.memory_suite --preset cpu                     # 2-core laptop, about 30 minutes
    python -m benchmarks.memory_suite --preset full --address auto --jobs 16   # a Ray cluster
    python -m benchmarks.memory_suite --preset cpu --report-only       # redraw table and figures
    python -m benchmarks.memory_suite --delays 50 100 --steps 3000000  # other PassiveMatch delays
    python -m benchmarks.memory_suite --preset long --active-delays 20 --steps 3000000   # other ActiveMatch delays
    python -m benchmarks.memory_suite --preset long                    # the long-delay grid (issue 12)
    python -m benchmarks.memory_suite --preset long --delays 100 --cells lstm/ur --seeds 0   # one cell of it
    python -m benchmarks.memory_suite --preset long --settings base actors.context_length={episode_length}
    python -m benchmarks.memory_suite --preset long --list             # what is planned, done, left
    python -m benchmarks.memory_suite --preset long --delays 100 --tasks PassiveMatch-d100 \
        --scores-from docs/data/suite_long_d100.csv --report-only       # a grid's tables from its versioned scores
    python -m benchmarks.memory_suite ... --compare gru/ur lstm/standard   # a pair besides the built-in ones

Each run is one ``run_impala.py`` subprocess writing to ``<out>/runs/<name>/``. A run whose
``summary.json`` says it reached its step budget is skipped, one with a checkpoint is resumed,
anything else is started afresh, so the suite can be stopped and restarted at any time. The
report reads every run folder that exists (finished or not: every run started is in the table):
one learning-curve PNG per task, a per-run CSV, and a per-cell markdown/CSV table (median and
min-max over seeds of the final return, the area under the curve and the steps to threshold);
then ``statistics.md`` (``benchmarks/suite_report.py``): IQM of the normalised score and the
probability of improvement with bootstrap intervals, performance profiles, forget-gate timescales
against the delay, and the training wall time per task (``--compare X Y`` adds pairs of planned
cells to the built-in comparisons, across cores too, and across settings for a cell named as the
tables label it, ``'lstm/ur [actors.context_length={episode_length}]'``). ``--scores-from`` adds the rows of runs
whose folders are gone from a versioned ``runs.csv`` (``benchmarks/suite_archive.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from benchmarks.plotting import markdown_table, plot_curves, smooth, write_csv
from benchmarks.suite_archive import Key, archive_key, archived_row, read_archive
from benchmarks.suite_grid import (  # Task: benchmarks/learning.py imports it from here
    BASE,
    PRESETS,
    ROOT,
    Preset,
    RunPlan,
    Task,  # noqa: F401 (re-exported)
    core_overrides,
    make_plans,
    overrides,
    parse_setting,
    select_tasks,
    with_budgets,
)
from benchmarks.suite_report import statistics_section
from benchmarks.timescales import run_timescales
from learner.plots import event_files, read_scalars

RETURN_TAG = "charts/episode_return"
BINARY_TAG = "gates/binary_frac"  # fraction of g outside [0.05, 0.95] (learner/gate_stats.py)
SUCCESS_FRACTION = 0.9  # solved: a normalised score of 0.9 (90% of the way from memoryless best to the maximum)
SMOOTHING = 10  # logged points in the trailing mean used for the curves and the threshold


def run_status(run_dir: Path, total_env_steps: int) -> str:
    """``done`` (summary at the step budget), ``partial`` (a summary short of it) or ``missing``."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        return "missing"
    data = json.loads(summary.read_text())
    complete = data["env_steps"] >= total_env_steps and not data.get("stopped_early", False)
    return "done" if complete else "partial"


def command(
    plan: RunPlan, preset: Preset, out_dir: Path, address: str | None, extra: tuple[str, ...] = ()
) -> list[str]:
    """The ``run_impala.py`` command line: resume when a checkpoint exists, else a fresh start."""
    run_dir = out_dir / "runs" / plan.name
    backend = "ray" if address else preset.backend
    base = [sys.executable, str(ROOT / "run_impala.py")]
    if address:
        base += ["--address", address]
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("ckpt-*.pt")):
        return [*base, "--resume", str(run_dir), f"run.total_env_steps={plan.task.total_env_steps}"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # started but nothing saved: start again from scratch
    config = plan.task.config or preset.config
    return [*base, "--config", str(config), *overrides(plan, out_dir / "runs", backend, extra)]


def execute(plan: RunPlan, preset: Preset, out_dir: Path, address: str | None, extra: tuple[str, ...] = ()) -> str:
    """Run one plan to completion in a subprocess (its output in ``<out>/logs/<name>.log``); return its status."""
    run_dir = out_dir / "runs" / plan.name
    if run_status(run_dir, plan.task.total_env_steps) == "done":
        return "skipped"
    log_path = out_dir / "logs" / f"{plan.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # One intra-op thread per run: the suite's parallelism is across runs, not inside them.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log_path.open("a") as log:
        code = subprocess.run(command(plan, preset, out_dir, address, extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=env, check=False).returncode  # fmt: skip
    status = run_status(run_dir, plan.task.total_env_steps) if code == 0 else f"failed (exit {code})"
    print(f"{plan.name}: {status}", flush=True)
    return status


def run_suite(
    plans: list[RunPlan], preset: Preset, out_dir: Path, jobs: int, address: str | None, extra: tuple[str, ...] = ()
) -> list[str]:
    """Run (or skip, or resume) every plan, ``jobs`` at a time; ``extra`` overrides go to every fresh run."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # threads only wait on subprocesses
        return list(pool.map(lambda p: execute(p, preset, out_dir, address, extra), plans))


def read_series(
    run_dir: Path, tags: tuple[str, ...], loaded: list | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tag: (env_steps [N], value [N])}`` from the run's TensorBoard events; absent tags are empty.

    ``learner.plots.read_scalars`` reads every event file, a resumed run's later value of a step winning.
    """
    scalars = read_scalars(run_dir, loaded)
    series = {}
    for tag in tags:
        steps, values = scalars.get(tag, ([], []))
        series[tag] = (np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64))
    return series


def training_clock(accumulators: list, tags: tuple[str, ...] | None = None) -> tuple[dict[int, float], float | None]:
    """``({env_step: seconds of training when it was logged}, total seconds of training)`` over the scalar
    events of ``tags`` (every tag when None); the total is None when there are none.

    Each event file counts from its first event (the writer opens it after ``ray.init`` and the learner
    are built, before the actors start, so their start-up counts); the files of a resumed run are laid
    end to end, so the pause between a stop and its resume is not training time.
    """
    elapsed: dict[int, float] = {}
    total: float | None = None
    for accumulator in accumulators:
        present = accumulator.Tags()["scalars"]
        events = [e for tag in (present if tags is None else tags) if tag in present for e in accumulator.Scalars(tag)]
        if not events:
            continue
        start, offset = accumulator.FirstEventTimestamp(), total or 0.0
        elapsed.update((e.step, offset + e.wall_time - start) for e in events)
        total = offset + max(e.wall_time for e in events) - start
    return elapsed, total


def training_seconds(run_dir: Path, loaded: list | None = None) -> float | None:
    """Seconds of training of a run, resumes included (``training_clock``)."""
    return training_clock(event_files(run_dir) if loaded is None else loaded)[1]


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps [N], mean episode return [N])``: the learning curve of one run."""
    return read_series(run_dir, (RETURN_TAG,))[RETURN_TAG]


def steps_to_threshold(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float | None:
    """The first env step where the smoothed return reaches ``threshold`` (None if never)."""
    hits = np.flatnonzero(smooth(returns, SMOOTHING) >= threshold)
    return float(steps[hits[0]]) if hits.size else None


def area_under_curve(steps: np.ndarray, returns: np.ndarray) -> float | None:
    """The mean return over training: trapezoidal area under the curve divided by the steps it spans."""
    if steps.size < 2 or steps[-1] <= steps[0]:
        return float(returns.mean()) if returns.size else None
    area = float(np.sum((returns[1:] + returns[:-1]) * np.diff(steps)) / 2)
    return area / float(steps[-1] - steps[0])


def run_metrics(plan: RunPlan, out_dir: Path) -> dict[str, Any] | None:
    """One row of the per-run table, or None when the run was never started."""
    run_dir = out_dir / "runs" / plan.name
    if not run_dir.exists():
        return None
    loaded = list(event_files(run_dir, histograms=True))  # parsed once for scalars, wall time and histograms
    series = read_series(run_dir, (RETURN_TAG, BINARY_TAG), loaded)
    steps, returns = series[RETURN_TAG]
    binary = series[BINARY_TAG][1]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    final = final_return(summary, returns)
    reached = steps_to_threshold(steps, returns, plan.task.success_threshold(SUCCESS_FRACTION))
    return {
        "task": plan.task.name, "cell": plan.label, "seed": plan.seed, "setting": plan.setting.label,
        "status": run_status(run_dir, plan.task.total_env_steps),
        "env_steps": summary.get("env_steps"), "final_return": final,
        "final_episodes": summary.get("return_window"), "score": plan.task.score(final),
        "auc": area_under_curve(steps, returns), "steps_to_threshold": reached, "solved": reached is not None,
        "binary_g": float(binary[-1]) if binary.size else None,
        "policy_entropy": summary.get("last_metrics", {}).get("policy/entropy"),
        "wall_time_s": training_seconds(run_dir, loaded) or summary.get("wall_time_s"), "curve": (steps, returns),
        "timescales": run_timescales(run_dir, plan.task.delay, loaded),
    }  # fmt: skip


def final_return(summary: dict[str, Any], returns: np.ndarray) -> float | None:
    """The summary's mean return over the last episodes; for a run stopped before its first
    checkpoint (no summary), the mean of its last SMOOTHING logged returns; None if it logged none."""
    if summary.get("mean_return") is not None:
        return float(summary["mean_return"])
    return float(returns[-SMOOTHING:].mean()) if returns.size else None


def spread(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    known = [v for v in values if v is not None]
    return (float(np.median(known)), float(min(known)), float(max(known))) if known else (None, None, None)


CELL_HEADERS = ["task", "cell", "runs (done)", "final return median", "min", "max", "AUC median", "min", "max",
                "reached score 0.9", "median steps to score 0.9", "binary g (median)"]  # fmt: skip
RUN_HEADERS = ["task", "cell", "seed", "setting", "status", "env_steps", "final_return", "final_episodes", "score",
               "auc", "steps_to_threshold", "binary_g", "policy_entropy", "wall_time_s"]  # fmt: skip


def group_runs(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per-run rows -> ``{(task, cell): rows}``, in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["cell"]), []).append(row)
    return groups


def cell_rows(rows: list[dict[str, Any]]) -> list[list[object]]:
    table = []
    for (task, cell), runs in group_runs(rows).items():
        reached = [r["steps_to_threshold"] for r in runs if r["steps_to_threshold"] is not None]
        done = sum(r["status"] == "done" for r in runs)
        table.append([task, cell, f"{len(runs)} ({done})", *spread([r["final_return"] for r in runs]),
                      *spread([r["auc"] for r in runs]), f"{len(reached)}/{len(runs)}", spread(reached)[0],
                      spread([r["binary_g"] for r in runs])[0]])  # fmt: skip
    return table


# The probabilities of improvement reported: UR against each gate of its cell type (Gu et al. 2020's claims);
# then the ablation of UR's parts, where those cells are planned: UR against U alone, R alone and the tied
# update alone (every gate of the paper ties the input gate to 1 - g); U and R each against the tied update
# they are added to (the paper's "each part helps"); and the tied update against the classic untied LSTM,
# so that the effect of the update is not read as the effect of the gate.
COMPARISONS = (("lstm/ur", "lstm/standard"), ("lstm/ur", "lstm/chrono"), ("lstm/ur", "lstm/chrono-short"),
               ("gru/ur", "gru/standard"),
               ("lstm/ur", "lstm/u"), ("lstm/ur", "lstm/r"), ("lstm/ur", "lstm/tied"),
               ("lstm/u", "lstm/tied"), ("lstm/r", "lstm/tied"),
               ("lstm/tied", "lstm/standard"))  # fmt: skip


def comparison_pairs(plans: list[RunPlan], extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """COMPARISONS, then the ``extra`` cell pairs (``--compare``), whose two cells are both planned,
    within each setting; an ``extra`` pair that names a setting (``"lstm/ur [key=value]"``, as the
    tables label a run) is compared as named, across settings, a bare cell then meaning the base
    setting; then, for each cell planned both in the base setting and in another, that setting against
    the base (the effect of the setting, e.g. a context window, on one cell, apart from the gate's)."""
    labels = {p.label for p in plans}
    settings = list(dict.fromkeys(p.setting for p in plans))
    cells = {p.cell for p in plans}
    across = [pair for pair in extra if not set(pair) <= cells]  # a name that is no bare cell carries its setting
    pairs = []
    for setting in settings:
        for x, y in dict.fromkeys((*COMPARISONS, *(pair for pair in extra if pair not in across))):
            pair = tuple(RunPlan(plans[0].task, c, 0, setting).label for c in (x, y))
            if set(pair) <= labels:
                pairs.append(pair)
    pairs += [pair for pair in dict.fromkeys(across) if set(pair) <= labels and pair not in pairs]
    for setting in (other for other in settings if other.overrides):
        for cell in dict.fromkeys(p.cell for p in plans):
            pair = tuple(RunPlan(plans[0].task, cell, 0, which).label for which in (setting, BASE))
            if set(pair) <= labels and pair not in pairs:
                pairs.append(pair)
    return pairs


def report(
    plans: list[RunPlan],
    out_dir: Path,
    reps: int = 5000,
    archive: Mapping[Key, Any] | None = None,
    compare: Sequence[tuple[str, str]] = (),
) -> str:
    """Write ``runs.csv``, ``cells.md``/``cells.csv``, ``<task>.png`` and the statistics section
    (``statistics.md``, ``profiles.png``, ``timescales_<task>.png``) under ``out_dir``; return the cell table.

    A planned run without a folder is taken from ``archive`` (``benchmarks/suite_archive.py``) when it
    holds it; a folder, when there is one, wins. ``compare`` adds cell pairs to COMPARISONS."""
    rows = [r for r in (run_metrics(p, out_dir) or archived_row(p, archive or {}) for p in plans) if r is not None]
    write_csv(out_dir / "runs.csv", RUN_HEADERS, [[r[h] for h in RUN_HEADERS] for r in rows])
    table = cell_rows(rows)
    write_csv(out_dir / "cells.csv", CELL_HEADERS, table)
    text = markdown_table(CELL_HEADERS, table)
    (out_dir / "cells.md").write_text(text)
    for task in {p.task.name: p.task for p in plans}.values():  # each task once, in plan order
        curves: dict[str, list] = {}
        for r in rows:
            steps, returns = r["curve"]
            if r["task"] == task.name and steps.size:
                curves.setdefault(r["cell"], []).append((steps, smooth(returns, SMOOTHING)))
        if curves:
            plot_curves(curves, out_dir / f"{task.name}.png", title=f"{task.name}: episode return",
                        xlabel="environment steps", ylabel=f"mean episode return ({SMOOTHING}-update mean)",
                        hlines={"max return": task.max_return, **dict(task.references)})  # fmt: skip
    if rows:
        delays = {p.task.name: p.task.delay for p in plans}
        section = statistics_section(rows, comparison_pairs(plans, compare), delays, out_dir, reps=reps)
        (out_dir / "statistics.md").write_text(section)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--cells", nargs="+", help="cell/gate pairs, e.g. lstm/ur gru/ur lstm/chrono-short "
                        "(default: the preset's)")  # fmt: skip
    parser.add_argument(
        "--tasks", nargs="+", help="task names of the preset (default: all, or none with --delays or --active-delays)"
    )
    parser.add_argument(
        "--delays", nargs="+", type=int, help="PassiveMatch delays to run besides (or instead of) the preset's"
    )
    parser.add_argument(
        "--active-delays", nargs="+", type=int, help="ActiveMatch delays to run besides (or instead of) the preset's"
    )
    parser.add_argument("--steps", type=int, help="env steps per run for every task (default: each task's own budget)")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the preset's seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--address", help="Ray cluster address: runs use actors.backend=ray and join it")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run, e.g. learner.num_gpus=1 on a GPU cluster")  # fmt: skip
    parser.add_argument("--settings", nargs="+", default=["base"], metavar="SETTING",
                        help="experimental settings, each run for every cell and named in its runs' folders: 'base' "
                             "(none) or key=value[,key=value], values may hold {episode_length}, {delay}, {unroll}; "
                             "e.g. --settings base actors.context_length={episode_length}")  # fmt: skip
    parser.add_argument("--budget", nargs="+", default=[], metavar="TASK=STEPS",
                        help="env steps for the named tasks only, e.g. PassiveMatch-d500=20000000")  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: benchmarks/out/suite_<preset>")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--scores-from", nargs="+", type=Path, default=[], metavar="RUNS_CSV",
                        help="runs.csv files (e.g. docs/data/suite_long_d100.csv) whose rows stand in for planned "
                             "runs that have no folder here: they are reported, not run again")  # fmt: skip
    parser.add_argument("--reps", type=int, default=5000, help="bootstrap resamples of the statistics")
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("X", "Y"),
                        help="report P(X > Y) and IQM(X) - IQM(Y) for two planned cells besides the built-in "
                             "pairs (repeatable), e.g. --compare gru/ur lstm/standard; within each setting, or "
                             "across settings for a cell named with its setting as the tables label it, e.g. "
                             "--compare 'lstm/ur [actors.context_length={episode_length}]' lstm/chrono")  # fmt: skip
    parser.add_argument(
        "--list", action="store_true", help="print the planned runs, their status and budget; run nothing"
    )
    args = parser.parse_args(argv)
    if any(item.startswith("run.total_env_steps=") for item in args.set):
        parser.error("set the budget with --steps: the suite reads it to know which runs are finished")
    preset = PRESETS[args.preset]
    args.cells = args.cells or list(preset.cells)
    try:
        tasks = select_tasks(preset, args.tasks, args.delays, args.steps, args.active_delays)
        args.task_list = with_budgets(tasks, args.budget)
        args.setting_list = tuple(dict.fromkeys(parse_setting(spec) for spec in args.settings))
        for cell in args.cells:
            core_overrides(cell, tasks[0])
        args.compare = [tuple(pair) for pair in args.compare]
        planned = [RunPlan(tasks[0], cell, 0, setting).label for setting in args.setting_list for cell in args.cells]
        for name in sorted({name for pair in args.compare for name in pair} - set(planned)):
            raise ValueError(f"--compare names {name!r}, which is not planned; planned cells: {', '.join(planned)}")
    except ValueError as error:
        parser.error(str(error))
    args.out = args.out or ROOT / "benchmarks" / "out" / f"suite_{args.preset}"
    try:
        args.archive = read_archive(args.scores_from)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    return args


def archived_instead(plan: RunPlan, out_dir: Path, archive: Mapping[Key, Any]) -> bool:
    """Whether ``plan`` has no run folder and the archive holds its row: it is reported, not run."""
    return not (out_dir / "runs" / plan.name).exists() and archive_key(plan) in archive


def list_plans(plans: list[RunPlan], out_dir: Path, archive: Mapping[Key, Any] | None = None) -> str:
    """One line per run (name, status, budget), then per task the env steps still to run; a run with no
    folder that ``archive`` holds is listed as archived and counts as done."""
    lines, left = [], {}
    for plan in plans:
        status = run_status(out_dir / "runs" / plan.name, plan.task.total_env_steps)
        if archived_instead(plan, out_dir, archive or {}):
            status = "done (archived)"
        lines.append(f"{plan.name}  {status}  {plan.task.total_env_steps:,} steps  unroll {plan.task.unroll_length}")
        left[plan.task.name] = left.get(plan.task.name, 0) + (
            0 if status.startswith("done") else plan.task.total_env_steps
        )
    lines += [f"{task}: at most {steps:,} env steps to run" for task, steps in left.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    plans = make_plans(args.task_list, args.cells, args.seeds or preset.seeds, args.setting_list)
    if args.list:
        print(list_plans(plans, args.out.resolve(), args.archive))
        return 0
    if not args.report_only:
        to_run = [p for p in plans if not archived_instead(p, args.out.resolve(), args.archive)]
        statuses = run_suite(to_run, preset, args.out.resolve(), args.jobs, args.address, tuple(args.set))
        print(f"{statuses.count('skipped')} skipped, {len(plans) - len(to_run)} archived, {len(plans)} planned",
              flush=True)  # fmt: skip
    print(report(plans, args.out.resolve(), reps=args.reps, archive=args.archive, compare=args.compare))
    statistics = args.out.resolve() / "statistics.md"
    if statistics.exists():
        print(statistics.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
