"""The reinforcement-learning memory suite: ``run_impala.py`` over tasks x cells x seeds.

    python -m benchmarks.memory_suite --preset cpu                     # 2-core laptop, about 30 minutes
    python -m benchmarks.memory_suite --preset full --address auto --jobs 16   # a Ray cluster
    python -m benchmarks.memory_suite --preset cpu --report-only       # redraw table and figures
    python -m benchmarks.memory_suite --delays 50 100 --steps 3000000  # other PassiveMatch delays
    python -m benchmarks.memory_suite --preset long                    # the long-delay grid (issue 12)
    python -m benchmarks.memory_suite --preset long --delays 100 --cells lstm/ur --seeds 0   # one cell of it
    python -m benchmarks.memory_suite --preset long --settings base actors.context_length={episode_length}
    python -m benchmarks.memory_suite --preset long --list             # what is planned, done, left

Each run is one ``run_impala.py`` subprocess writing to ``<out>/runs/<name>/``. A run whose
``summary.json`` says it reached its step budget is skipped, one with a checkpoint is resumed,
anything else is started afresh, so the suite can be stopped and restarted at any time. The
report reads every run folder that exists (finished or not: every run started is in the table):
one learning-curve PNG per task, a per-run CSV, and a per-cell markdown/CSV table (median and
min-max over seeds of the final return, the area under the curve and the steps to threshold);
then ``statistics.md`` (``benchmarks/suite_report.py``): IQM of the normalised score and the
probability of improvement with bootstrap intervals, performance profiles, forget-gate timescales
against the delay, and the training wall time per task.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from benchmarks.plotting import markdown_table, plot_curves, smooth, write_csv
from benchmarks.suite_report import statistics_section
from benchmarks.timescales import run_timescales
from learner.plots import event_files, read_scalars

ROOT = Path(__file__).resolve().parent.parent
RETURN_TAG = "charts/episode_return"
BINARY_TAG = "gates/binary_frac"  # fraction of g outside [0.05, 0.95] (learner/gate_stats.py)
SUCCESS_FRACTION = 0.9  # success threshold: 90% of the task's maximum return
SMOOTHING = 10  # logged points in the trailing mean used for the curves and the threshold


@dataclass(frozen=True)
class Task:
    """One environment setting of the suite.

    ``episode_length`` sets chrono's ``t_max`` (the longest dependency) and, through
    ``unroll_length``, how much of an episode the learner back-propagates through at once.
    """

    name: str
    env_id: str
    max_return: float
    episode_length: int
    total_env_steps: int
    unroll_length: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    references: tuple[tuple[str, float], ...] = ()  # named reference returns drawn on the figure
    config: Path | None = None  # the task's own preset; None: the suite preset's config

    @property
    def delay(self) -> int:
        """The dependency the task asks memory to span: its ``delay`` option, else the whole episode."""
        return int(self.kwargs.get("delay", self.episode_length))

    @property
    def score_floor(self) -> float:
        """The return that shows no memory: "memoryless best" where known, else "uniform random", else 0."""
        named = dict(self.references)
        return named.get("memoryless best", named.get("uniform random", 0.0))

    def score(self, final_return: float | None) -> float:
        """The normalised score: 0 at ``score_floor``, 1 at ``max_return``; a run without a return scores 0.

        On the match tasks this is (P(match) - 1/4) / (3/4) for an agent that takes every apple: the share
        of the match that memory earns, comparable across delays whose apples outweigh the match."""
        if final_return is None:
            return 0.0
        return (final_return - self.score_floor) / (self.max_return - self.score_floor)


def passive_match(delay: int, steps: int, unroll: int) -> Task:
    # Episode: 3 cue steps + delay + 1 choice; maximum 1 + delay * 0.05 (docs/envs.md).
    # choice=colour (name the cue colour) is pinned: the env's default changed during the first CPU suite.
    # Uniform random: 1/4 on the match and 1/4 of the apples; memoryless best: all apples, 1/4 on the match.
    references = (("uniform random", 0.25 + 0.05 * delay / 4), ("memoryless best", 0.25 + 0.05 * delay))
    return Task(f"PassiveMatch-d{delay}", "gatedrl/PassiveMatch-v0", 1 + 0.05 * delay, delay + 4, steps, unroll,
                {"delay": delay, "choice": "colour"}, references)  # fmt: skip


def active_match(delay: int, steps: int, unroll: int) -> Task:
    # Episode: 9 cue-phase moves + delay + 1 choice (envs/active_match.py defaults), maximum 1 + delay * 0.05;
    # the cue phase pays nothing, so the references are PassiveMatch's.
    references = (("uniform random", 0.25 + 0.05 * delay / 4), ("memoryless best", 0.25 + 0.05 * delay))
    return Task(f"ActiveMatch-d{delay}", "gatedrl/ActiveMatch-v0", 1 + 0.05 * delay, delay + 10, steps, unroll,
                {"delay": delay, "choice": "colour"}, references)  # fmt: skip


def popgym(name: str, episode_length: int, steps: int, unroll: int) -> Task:
    # POPGym scales every task's episode return into [-1, 1]; guessing among 4 answers averages -0.5.
    return Task(name, f"popgym-{name}-v0", 1.0, episode_length, steps, unroll, references=(("uniform random", -0.5),))


def cpu_unroll(delay: int) -> int:
    """The whole episode (delay + 4 steps) in one unroll, so the gradient reaches the cue; at least 20."""
    return max(20, 10 * math.ceil((delay + 4) / 10))


def full_unroll(delay: int) -> int:
    return max(80, 2 * delay)


# Budgets from measured runs on 2 cores (docs/RESULTS.md): delay 10 is learned within 0.3 M steps,
# delay 30 needs about 0.5 M for the cells that solve it. POPGym is left to the full suite.
CPU_TASKS = (
    passive_match(10, 300_000, cpu_unroll(10)),
    passive_match(30, 600_000, cpu_unroll(30)),
)
FULL_TASKS = (
    *(passive_match(d, 20_000_000, full_unroll(d)) for d in (20, 50, 100, 200)),
    active_match(20, 20_000_000, 80),
    popgym("RepeatPreviousEasy", 51, 10_000_000, 80),
    popgym("RepeatFirstEasy", 51, 10_000_000, 80),
    popgym("AutoencodeEasy", 103, 20_000_000, 80),
    Task("CartPoleNoVelocity", "gatedrl/CartPoleNoVelocity-v0", 500.0, 500, 10_000_000, 80),
)
DEFAULT_CELLS = ("lstm/standard", "lstm/chrono", "lstm/ur", "none/standard")


def long_unroll(episode_length: int) -> int:
    """Two episodes per unroll (rounded up to 10): with the episode's phase uniform against the unroll's,
    (T - L + 1) / T of episodes, about half, lie inside one unroll, where the gradient links the choice to
    the cue; the other half must be carried across a boundary by the gates alone (or by a context)."""
    return 10 * math.ceil(2 * episode_length / 10)


# The long-delay grid (issue 12) for 2 cores, one run at a time. Budgets in env steps, easy to change
# here or per command (--budget ActiveMatch-d200=12000000): the CPU suite's cells that solved delays
# 10-50 needed about 12-20 k episodes (steps to 90 % / episode length), so each budget gives 24-45 k
# episodes, the shortest margin at delay 500 to keep it near 6 h at ~20 k env steps/s for 35 runs.
# ActiveMatch gets more episodes than PassiveMatch at the same delay: it must also learn to look.
def passive_long_unroll(delay: int) -> int:
    return long_unroll(delay + 4)  # PassiveMatch's episode: 3 cue steps + delay + 1 choice


LONG_BUDGETS = {
    "PassiveMatch-d100": 4_000_000,
    "PassiveMatch-d200": 6_000_000,
    "PassiveMatch-d500": 12_000_000,
    "ActiveMatch-d100": 5_000_000,
    "ActiveMatch-d200": 8_000_000,
}
LONG_TASKS = (
    *(passive_match(d, LONG_BUDGETS[f"PassiveMatch-d{d}"], passive_long_unroll(d)) for d in (100, 200, 500)),
    *(active_match(d, LONG_BUDGETS[f"ActiveMatch-d{d}"], long_unroll(d + 10)) for d in (100, 200)),
)
# chrono-short: chrono told a horizon 10x too short (t_max = episode length / 10), as a user who does
# not know the horizon might; UR needs no horizon at all (Gu et al. 2020).
LONG_CELLS = ("lstm/standard", "lstm/chrono", "lstm/chrono-short", "lstm/ur", "gru/ur", "gru/standard",
              "none/standard")  # fmt: skip
CHRONO_SHORT_FACTOR = 10


@dataclass(frozen=True)
class Preset:
    config: Path
    tasks: tuple[Task, ...]
    seeds: tuple[int, ...]
    backend: str
    unroll_for_delay: Callable[[int], int]  # unroll of a PassiveMatch task added by --delays
    cells: tuple[str, ...] = DEFAULT_CELLS  # the cells run when --cells is not given


PRESETS = {
    "cpu": Preset(ROOT / "configs" / "suite_cpu.yaml", CPU_TASKS, (0, 1, 2), "ray", cpu_unroll),
    "full": Preset(ROOT / "configs" / "suite_full.yaml", FULL_TASKS, (0, 1, 2, 3, 4), "ray", full_unroll),
    "long": Preset(
        ROOT / "configs" / "suite_long.yaml", LONG_TASKS, (0, 1, 2, 3, 4), "ray", passive_long_unroll, LONG_CELLS
    ),
}


def select_tasks(
    preset: Preset, names: list[str] | None, delays: list[int] | None, steps: int | None
) -> tuple[Task, ...]:
    """The preset's tasks named in ``names`` (all of them when neither names nor delays are given),
    plus a PassiveMatch task per delay in ``delays``; ``steps`` replaces every task's budget.

    A PassiveMatch delay the preset lacks gets the preset's unroll rule and, without ``steps``,
    the largest budget among the preset's tasks.
    """
    known = {t.name: t for t in preset.tasks}
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}: the preset has {', '.join(known)} (other delays: --delays)")
    chosen = [known[n] for n in names] if names else ([] if delays else list(preset.tasks))
    budget = steps or max(t.total_env_steps for t in preset.tasks)
    for delay in delays or ():
        task = passive_match(delay, budget, preset.unroll_for_delay(delay))
        if task.name not in {t.name for t in chosen}:
            chosen.append(known.get(task.name, task))
    if steps:
        chosen = [dataclasses.replace(t, total_env_steps=steps) for t in chosen]
    return tuple(chosen)


@dataclass(frozen=True)
class Setting:
    """Config overrides that define an experimental setting beside the cell (e.g. a context window).

    Values may name the task: ``{episode_length}``, ``{delay}``, ``{unroll}`` are filled in per task,
    so ``actors.context_length={episode_length}`` means one episode of context at every delay. A
    setting is part of each run's name, so runs with and without it share one output folder.
    """

    overrides: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``""`` for the base setting, else the overrides as given (``key=value,key=value``)."""
        return ",".join(self.overrides)

    @property
    def slug(self) -> str:
        """The label as a file name: the last part of each key, then its value, in [A-Za-z0-9_.+-]."""
        parts = []
        for item in self.overrides:
            key, _, value = item.partition("=")
            parts.append(re.sub(r"[^A-Za-z0-9_.+-]", "", f"{key.rsplit('.', 1)[-1]}-{value}"))
        return "+".join(parts)

    def expand(self, task: Task) -> list[str]:
        fields = {"episode_length": task.episode_length, "delay": task.delay, "unroll": task.unroll_length}
        return [item.format(**fields) for item in self.overrides]


BASE = Setting()


def parse_setting(spec: str) -> Setting:
    """``base`` (no overrides) or ``key=value[,key=value...]``; ``ValueError`` for anything else."""
    if spec == "base":
        return BASE
    items = tuple(item.strip() for item in spec.split(",") if item.strip())
    bad = [item for item in items if "=" not in item or item.startswith("run.")]
    if not items or bad:
        raise ValueError(f"setting {spec!r}: expected 'base' or key=value[,key=value] outside run.*")
    return Setting(items)


@dataclass(frozen=True)
class RunPlan:
    task: Task
    cell: str  # "lstm/ur", "none/standard", "lstm/chrono-short", ...
    seed: int
    setting: Setting = BASE

    @property
    def name(self) -> str:
        setting = f"__{self.setting.slug}" if self.setting.overrides else ""
        return f"{self.task.name}__{self.cell.replace('/', '-')}{setting}__s{self.seed}"

    @property
    def label(self) -> str:
        """The cell as the report groups it: with its setting in brackets unless it is the base."""
        return f"{self.cell} [{self.setting.label}]" if self.setting.overrides else self.cell


def core_overrides(cell_spec: str, task: Task) -> list[str]:
    """``cell/gate`` (or ``lstm/chrono-short``) as config overrides; ``ValueError`` for an unknown variant."""
    cell, _, variant = cell_spec.partition("/")
    gate, _, modifier = variant.partition("-")
    if not cell or not gate or modifier not in ("", "short") or (modifier and gate != "chrono"):
        raise ValueError(f"cell {cell_spec!r}: expected cell/gate, e.g. lstm/ur, or lstm/chrono-short")
    items = [f"agent.core.cell={cell}", f"agent.core.gate={gate}"]
    if gate == "chrono":  # chrono's T_max is the longest dependency the task asks for (Tallec & Ollivier 2018)
        t_max = task.episode_length // CHRONO_SHORT_FACTOR if modifier == "short" else task.episode_length
        items.append(f"agent.core.options.t_max={max(2, t_max)}")
    return items


def overrides(plan: RunPlan, log_dir: Path, backend: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The dotted config overrides that turn the preset into this run: the task, the cell, the setting,
    then ``extra`` last, so it wins."""
    task = plan.task
    items = [f"env.id={task.env_id}", *core_overrides(plan.cell, task),
             f"run.seed={plan.seed}", f"run.name={plan.name}", f"run.log_dir={log_dir}",
             f"run.total_env_steps={task.total_env_steps}", f"actors.unroll_length={task.unroll_length}",
             f"actors.backend={backend}"]  # fmt: skip
    items += [f"env.kwargs.{k}={v}" for k, v in task.kwargs.items()]
    return items + plan.setting.expand(task) + list(extra)


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


def make_plans(
    tasks: tuple[Task, ...],
    cells: list[str] | tuple[str, ...],
    seeds: tuple[int, ...] | list[int],
    settings: tuple[Setting, ...] = (BASE,),
) -> list[RunPlan]:
    # Seeds outermost: a suite stopped early still has every task x setting x cell at the first seeds.
    return [RunPlan(t, c, s, setting) for s in seeds for t in tasks for setting in settings for c in cells]


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


def training_seconds(run_dir: Path, loaded: list | None = None) -> float | None:
    """Seconds of training: in each event file, from its first event (the writer's opening) to its last
    scalar, added over the files, so that the pause between a stop and its resume does not count."""
    total, found = 0.0, False
    for accumulator in event_files(run_dir) if loaded is None else loaded:
        times = [e.wall_time for tag in accumulator.Tags()["scalars"] for e in accumulator.Scalars(tag)]
        if times:
            total += max(times) - accumulator.FirstEventTimestamp()
            found = True
    return total if found else None


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
    reached = steps_to_threshold(steps, returns, SUCCESS_FRACTION * plan.task.max_return)
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
                "reached 90% of max", "median steps to 90%", "binary g (median)"]  # fmt: skip
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


# The probabilities of improvement reported: UR against each gate of its cell type (Gu et al. 2020's claims).
COMPARISONS = (("lstm/ur", "lstm/standard"), ("lstm/ur", "lstm/chrono"), ("lstm/ur", "lstm/chrono-short"),
               ("gru/ur", "gru/standard"))  # fmt: skip


def comparison_pairs(plans: list[RunPlan]) -> list[tuple[str, str]]:
    """COMPARISONS whose two cells are both planned, within each setting (never across settings)."""
    labels = {p.label for p in plans}
    pairs = []
    for setting in dict.fromkeys(p.setting for p in plans):
        for x, y in COMPARISONS:
            pair = tuple(RunPlan(plans[0].task, c, 0, setting).label for c in (x, y))
            if set(pair) <= labels:
                pairs.append(pair)
    return pairs


def report(plans: list[RunPlan], out_dir: Path, reps: int = 5000) -> str:
    """Write ``runs.csv``, ``cells.md``/``cells.csv``, ``<task>.png`` and the statistics section
    (``statistics.md``, ``profiles.png``, ``timescales_<task>.png``) under ``out_dir``; return the cell table."""
    rows = [r for r in (run_metrics(p, out_dir) for p in plans) if r is not None]
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
        section = statistics_section(rows, comparison_pairs(plans), delays, out_dir, reps=reps)
        (out_dir / "statistics.md").write_text(section)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--cells", nargs="+", help="cell/gate pairs, e.g. lstm/ur gru/ur lstm/chrono-short "
                        "(default: the preset's)")  # fmt: skip
    parser.add_argument("--tasks", nargs="+", help="task names of the preset (default: all, or none with --delays)")
    parser.add_argument(
        "--delays", nargs="+", type=int, help="PassiveMatch delays to run besides (or instead of) the preset's"
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
    parser.add_argument(
        "--list", action="store_true", help="print the planned runs, their status and budget; run nothing"
    )
    args = parser.parse_args(argv)
    if any(item.startswith("run.total_env_steps=") for item in args.set):
        parser.error("set the budget with --steps: the suite reads it to know which runs are finished")
    preset = PRESETS[args.preset]
    args.cells = args.cells or list(preset.cells)
    try:
        tasks = select_tasks(preset, args.tasks, args.delays, args.steps)
        args.task_list = with_budgets(tasks, args.budget)
        args.setting_list = tuple(dict.fromkeys(parse_setting(spec) for spec in args.settings))
        for cell in args.cells:
            core_overrides(cell, tasks[0])
    except ValueError as error:
        parser.error(str(error))
    args.out = args.out or ROOT / "benchmarks" / "out" / f"suite_{args.preset}"
    return args


def with_budgets(tasks: tuple[Task, ...], budgets: list[str]) -> tuple[Task, ...]:
    """``tasks`` with the ``TASK=STEPS`` budgets applied; ``ValueError`` for a task not in ``tasks``."""
    steps = {}
    for item in budgets:
        name, _, value = item.partition("=")
        if name not in {t.name for t in tasks} or not value.isdigit():
            raise ValueError(
                f"--budget {item!r}: expected TASK=STEPS with TASK one of {', '.join(t.name for t in tasks)}"
            )
        steps[name] = int(value)
    return tuple(dataclasses.replace(t, total_env_steps=steps.get(t.name, t.total_env_steps)) for t in tasks)


def list_plans(plans: list[RunPlan], out_dir: Path) -> str:
    """One line per run (name, status, budget), then per task the env steps still to run."""
    lines, left = [], {}
    for plan in plans:
        status = run_status(out_dir / "runs" / plan.name, plan.task.total_env_steps)
        lines.append(f"{plan.name}  {status}  {plan.task.total_env_steps:,} steps  unroll {plan.task.unroll_length}")
        left[plan.task.name] = left.get(plan.task.name, 0) + (0 if status == "done" else plan.task.total_env_steps)
    lines += [f"{task}: at most {steps:,} env steps to run" for task, steps in left.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    plans = make_plans(args.task_list, args.cells, args.seeds or preset.seeds, args.setting_list)
    if args.list:
        print(list_plans(plans, args.out.resolve()))
        return 0
    if not args.report_only:
        statuses = run_suite(plans, preset, args.out.resolve(), args.jobs, args.address, tuple(args.set))
        print(f"{statuses.count('skipped')} skipped, {len(statuses)} planned", flush=True)
    print(report(plans, args.out.resolve()))
    statistics = args.out.resolve() / "statistics.md"
    if statistics.exists():
        print(statistics.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
