"""The learning benchmark: standard tasks x cells x seeds through ``run_impala.py``, as the memory suite.

    python -m benchmarks.learning --jobs 1                                  # every task, 3 cells, 3 seeds
    python -m benchmarks.learning --tasks CartPole-v1 RepeatPreviousEasy    # some of them
    python -m benchmarks.learning --report-only                             # redraw tables, figures, docs

The runs go through the memory suite's runner (``benchmarks/memory_suite.py``: a finished run is
skipped, one with a checkpoint resumed), each task with its own preset. Every figure comes from
the TensorBoard tag ``charts/episode_return_mean100``, the mean return of the last 100 finished
episodes, logged at each update once 100 episodes have ended (runs logged before 2026-12-02
logged it from the first episode on, so their first points average fewer):

* steps / seconds to threshold: the first logged point at or above the task's threshold; its env
  steps, and its wall-clock seconds since the run's first TensorBoard event (``read_elapsed``);
* held from: the first logged point from which every later one is at or above the threshold (the
  run reached it and stayed); lowest after reaching: the smallest value from the first point at or
  above the threshold on (a collapse after reaching it shows here);
* final: the last logged value; best: the largest;
* best iteration: MMER as POPGym defines it (Morad et al. 2023: the maximum over training of RLlib's
  ``episode_reward_mean``, the mean over every episode of a 65,536-step iteration), from the per-update
  ``charts/episode_return`` weighted by ``charts/episodes``. It is the one to set beside POPGym's
  figures: the best of many 100-episode windows is lifted by their noise (by 0.03-0.04 on
  CountRecallEasy at 4 M steps). Both are reported as mean and sample standard deviation over seeds.

The report writes ``runs.csv``, ``cells.csv``/``cells.md`` and per-task curves (median over seeds,
min-max band) under ``--out``, and refreshes each measured task's block in ``docs/LEARNING.md``.
``--scores-from docs/data/learning_<x>.csv`` (a versioned ``runs.csv``) stands in for runs whose
folders are gone: they count in the tables, not in the curves, and are not run again.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from benchmarks.memory_suite import (
    Preset,
    RunPlan,
    Task,
    archived_instead,
    group_runs,
    make_plans,
    read_series,
    run_status,
    run_suite,
    spread,
    training_clock,
)
from benchmarks.plotting import format_cell, markdown_table, plot_curves, write_csv
from benchmarks.suite_archive import Key, archive_key, parse_number, read_archive
from benchmarks.suite_grid import WITHOUT_PREVIOUS_ACTION
from configs import load_config
from learner.metrics import EPISODE_RETURN, EPISODE_RETURN_MEAN100, EPISODES_ENDED
from learner.plots import event_files

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DEFAULT_CELLS = ("lstm/standard", "lstm/ur", "none/standard")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_DOC = ROOT / "docs" / "LEARNING.md"


@dataclass(frozen=True)
class Published:
    """A published figure to set beside ours (``value`` None: looked for, not confirmed)."""

    model: str
    value: float | None
    std: float | None
    budget: str
    source: str


@dataclass(frozen=True)
class Benchmark:
    task: Task  # name, env id, budget, unroll, preset (task.config)
    threshold: float  # on the 100-episode mean return
    mmer: bool = False  # report POPGym's MMER beside the published figures
    published: tuple[Published, ...] = ()


POPGYM_SOURCE = "Morad et al. 2023 (arXiv 2303.01859), per-env table: not confirmed here"


def popgym_task(
    name: str, episode_length: int, steps: int, threshold: float, overrides: tuple[str, ...] = ()
) -> Benchmark:
    # Returns lie in [-1, 1]; a memoryless policy guesses (RepeatPrevious: -0.5 on average).
    task = Task(name, f"popgym-{name}-v0", 1.0, episode_length, steps, 20, config=CONFIGS / "popgym.yaml",
                overrides=overrides)  # fmt: skip
    published = tuple(Published(m, None, None, "15M steps, PPO", POPGYM_SOURCE) for m in ("LSTM", "GRU"))
    return Benchmark(task, threshold, mmer=True, published=published)


def gym_task(
    name: str, env_id: str, steps: int, threshold: float, config: str, max_return: float, episode_length: int,
    references: tuple[tuple[str, float], ...] = (),
) -> Benchmark:  # fmt: skip
    """A task with its own preset (``configs/<config>``) and that preset's unroll of 20."""
    task = Task(name, env_id, max_return, episode_length, steps, 20, references=references, config=CONFIGS / config)
    return Benchmark(task, threshold)


# Budgets sized for a 2-core machine (docs/LEARNING.md says how they were chosen).
BENCHMARKS = (
    gym_task("CartPole-v1", "CartPole-v1", 1_000_000, 475.0, "cartpole.yaml", 500.0, 500),
    gym_task(
        "CartPoleNoVelocity",
        "gatedrl/CartPoleNoVelocity-v0",
        2_000_000,
        475.0,
        "cartpole.yaml",
        500.0,
        500,
    ),
    popgym_task("RepeatPreviousEasy", 51, 2_000_000, 0.9),
    # The first card's suit, asked at each of the 51 steps: one cue held across two unroll boundaries.
    popgym_task("RepeatFirstEasy", 51, 2_000_000, 0.9, WITHOUT_PREVIOUS_ACTION),
    # Threshold: memory in use, not the task solved. The memoryless control's 100-episode mean never
    # passes -0.90 (chance -0.92); every LSTM run with the preset's window passes -0.7 by 0.73 M, and
    # 10 M steps reach about 0 (docs/LEARNING.md), so the earlier guess of 0.5 measured nothing in 2 M.
    popgym_task("CountRecallEasy", 51, 2_000_000, -0.7),
    # Threshold: memory in use, as CountRecallEasy's. The memoryless control's 100-episode mean never
    # passes -0.46 in 3 M steps (chance -0.5); 0.9 was a guess no run came near (docs/LEARNING.md).
    popgym_task("RepeatPreviousMedium", 103, 3_000_000, -0.4),
    gym_task("MiniGrid-MemoryS7", "MiniGrid-MemoryS7-v0", 16_000_000, 0.9, "minigrid_memory.yaml", 1.0, 245),
    # A task nobody here tuned for (added 2026-12-07), run with the classic-control preset a user would pick:
    # -1 a step until the tip swings above the bar, 500 steps at most; the threshold is gymnasium's
    # reward_threshold. Random play reaches the bar in about 2.5 % of episodes (docs/LEARNING.md).
    gym_task(
        "Acrobot-v1",
        "Acrobot-v1",
        1_000_000,
        -100.0,
        "cartpole.yaml",
        0.0,
        500,
        references=(("rl-baselines-zoo A2C (tuned)", -86.6),),
    ),
    # A second task nobody here tuned for (added 2026-12-08): dense shaped rewards, -100 for a crash and
    # +100 for coming to rest, about 300 at best; 1,000 steps at most; the threshold is gymnasium's
    # reward_threshold. Needs Box2D (requirements-extras.txt). Budget: the preset's runs level off at
    # 100-117 by 1 M and stay there to 3 M (two runs); at 2 M its nine runs end at 100-127, none at 200
    # (2026-12-08); with a tenth of its entropy bonus two UR runs of three pass 200 (docs/LEARNING.md,
    # "LunarLander-v3").
    gym_task(
        "LunarLander-v3",
        "LunarLander-v3",
        2_000_000,
        200.0,
        "cartpole.yaml",
        300.0,
        1000,
        references=(("rl-baselines3-zoo PPO (tuned, 1 M steps)", 242.1),),
    ),
)
KNOWN = {b.task.name: b for b in BENCHMARKS}
# The runner's fallback config and actor backend; each task names its own preset.
PRESET = Preset(CONFIGS / "cartpole.yaml", tuple(b.task for b in BENCHMARKS), DEFAULT_SEEDS, "ray", lambda delay: 20)


def first_at_or_above(values: np.ndarray, threshold: float) -> int | None:
    """Index of the first value ``>= threshold``, or None."""
    hits = np.flatnonzero(values >= threshold)
    return int(hits[0]) if hits.size else None


def held_from(values: np.ndarray, threshold: float) -> int | None:
    """Index from which every value is ``>= threshold`` to the end (the run reached the threshold and
    stayed), or None when the last value is below it."""
    below = np.flatnonzero(values < threshold)
    start = int(below[-1]) + 1 if below.size else 0
    return start if start < values.size else None


def lowest_after(values: np.ndarray, threshold: float) -> float | None:
    """The lowest value from the first one at or above ``threshold`` on: how far a run that reached
    the threshold fell afterwards (a collapse shows here), or None if it never reached it."""
    hit = first_at_or_above(values, threshold)
    return None if hit is None else float(values[hit:].min())


# POPGym's train batch: one RLlib iteration, and one point of the ``episode_reward_mean`` its MMER maximises.
POPGYM_ITERATION_STEPS = 65_536
NO_MMER = np.zeros(0)


def iteration_means(
    steps: np.ndarray, returns: np.ndarray, counts: np.ndarray | None, iteration_steps: int
) -> np.ndarray:
    """The mean return of the episodes that ended in each complete iteration of ``iteration_steps`` env
    steps (an update logged at step s ended its episodes in ``(s - batch, s]``: iteration ``(s - 1) //
    iteration_steps``), from each update's mean ``returns`` weighted by its episode ``counts``.

    ``counts`` None (runs logged before ``charts/episodes``): every update weighs the same, which is exact
    when every episode has the same length (the POPGym tasks here), as each update then ends as many
    episodes whatever their returns. The last, incomplete iteration is left out, as RLlib never reports it."""
    if steps.size == 0:
        return np.zeros(0)
    weights = np.ones_like(returns) if counts is None else counts
    iteration = (steps.astype(np.int64) - 1) // iteration_steps
    complete = int(steps.max()) // iteration_steps
    keep = iteration < complete
    totals = np.bincount(iteration[keep], weights=(weights * returns)[keep], minlength=complete)
    episodes = np.bincount(iteration[keep], weights=weights[keep], minlength=complete)
    return totals[episodes > 0] / episodes[episodes > 0]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the known values; std None below two."""
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return float(np.mean(known)), (float(np.std(known, ddof=1)) if len(known) > 1 else None)


def read_elapsed(run_dir: Path, tag: str) -> dict[int, float]:
    """``{env_step: seconds}``: when each point of ``tag`` was logged, in seconds of training
    (``memory_suite.training_clock``: from the run's first event, a resume's pause not counted)."""
    return training_clock(event_files(run_dir), (tag,))[0]


def run_row(bench: Benchmark, plan: RunPlan, out_dir: Path) -> dict[str, Any] | None:
    """One run's figures, or None when it was never started."""
    run_dir = out_dir / "runs" / plan.name
    if not run_dir.exists():
        return None
    series = read_series(run_dir, (EPISODE_RETURN_MEAN100, EPISODE_RETURN, EPISODES_ENDED))
    steps, values = series[EPISODE_RETURN_MEAN100]
    update_steps, update_returns = series[EPISODE_RETURN]
    count_steps, counts = series[EPISODES_ENDED]
    # Only where POPGym's figures are set beside ours: without counts (runs before 2026-12-05) the equal
    # weights are exact for POPGym's fixed-length episodes, not for CartPole's or MiniGrid's.
    known = counts if np.array_equal(count_steps, update_steps) else None
    iterations = iteration_means(update_steps, update_returns, known, POPGYM_ITERATION_STEPS) if bench.mmer else NO_MMER
    elapsed = read_elapsed(run_dir, EPISODE_RETURN_MEAN100)
    seconds = np.array([elapsed.get(int(s), np.nan) for s in steps])
    hit, held = first_at_or_above(values, bench.threshold), held_from(values, bench.threshold)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    return {
        "task": plan.task.name, "cell": plan.cell, "seed": plan.seed,
        "status": run_status(run_dir, plan.task.total_env_steps), "env_steps": summary.get("env_steps"),
        "final": float(values[-1]) if values.size else None, "best": float(values.max()) if values.size else None,
        "best_iteration": float(iterations.max()) if iterations.size else None,
        "steps_to_threshold": None if hit is None else float(steps[hit]),
        "seconds_to_threshold": None if hit is None else float(seconds[hit]),
        "held_from": None if held is None else float(steps[held]), "lowest_after": lowest_after(values, bench.threshold),
        "train_seconds": float(seconds[-1]) if seconds.size else None, "wall_time_s": summary.get("wall_time_s"),
        "threshold": bench.threshold, "curve": (steps, values), "curve_seconds": (seconds, values),
    }  # fmt: skip


RUN_HEADERS = ["task", "cell", "seed", "status", "env_steps", "final", "best", "steps_to_threshold",
               "seconds_to_threshold", "held_from", "lowest_after", "train_seconds", "wall_time_s",
               "best_iteration", "threshold"]  # fmt: skip
ARCHIVE_REQUIRED = ("task", "cell", "seed", "status", "env_steps", "final", "best", "threshold")
NO_CURVE = (np.zeros(0), np.zeros(0))


def read_scores(paths: list[Path]) -> dict[Key, dict[str, str]]:
    """The rows of versioned learning ``runs.csv`` files by (task, cell, seed); ``ValueError`` names a
    file that is not one."""
    return read_archive(paths, ARCHIVE_REQUIRED, "learning-benchmark")


def archived_run_row(bench: Benchmark, plan: RunPlan, archive: dict[Key, dict[str, str]]) -> dict[str, Any] | None:
    """``plan``'s row from a versioned runs.csv (no curve), or None when the archive does not hold it.

    ``ValueError`` when the row cannot stand for this plan: measured against another threshold (its
    steps to threshold, held-from and lowest-after would not apply) or over more env steps than the
    task's budget (its final and best would not be at this budget)."""
    row = archive.get(archive_key(plan))
    if row is None:
        return None
    threshold, env_steps = parse_number(row["threshold"], float), parse_number(row["env_steps"], int)
    if threshold != bench.threshold:
        raise ValueError(f"{plan.name}: archived with threshold {threshold:g}, the task's is {bench.threshold:g}; "
                         f"its steps to threshold do not apply (report it from its run folder)")  # fmt: skip
    if env_steps is not None and env_steps > bench.task.total_env_steps:
        raise ValueError(f"{plan.name}: archived at {env_steps:,} env steps, more than the budget "
                         f"{bench.task.total_env_steps:,}; give the run's budget with --steps")  # fmt: skip
    values = {name: parse_number(row.get(name), float) for name in RUN_HEADERS[5:-1]}
    return {**values, "task": plan.task.name, "cell": plan.cell, "seed": plan.seed, "status": row["status"],
            "env_steps": env_steps, "threshold": threshold, "curve": NO_CURVE, "curve_seconds": NO_CURVE}  # fmt: skip


CELL_HEADERS = ["task", "cell", "runs (done)", "reached threshold", "steps to threshold (median)",
                "seconds to threshold (median)", "final median", "final min", "final max", "best mean",
                "best std", "train seconds (median)", "held to the end", "held from (median)",
                "lowest after reaching (min)"]  # fmt: skip


def cell_rows(rows: list[dict[str, Any]]) -> list[list[object]]:
    """Per task and cell: how many runs reached the threshold, the medians among those, final and best;
    then how many were at or above it from some step to the end, the median of that step, and the lowest
    100-episode mean of any run after it first reached the threshold (its collapse, if any)."""
    table = []
    for (task, cell), runs in group_runs(rows).items():
        reached = [r for r in runs if r["steps_to_threshold"] is not None]
        done = sum(r["status"] == "done" for r in runs)
        table.append([task, cell, f"{len(runs)} ({done})", f"{len(reached)}/{len(runs)}",
                      spread([r["steps_to_threshold"] for r in reached])[0],
                      spread([r["seconds_to_threshold"] for r in reached])[0],
                      *spread([r["final"] for r in runs]), *mean_std([r["best"] for r in runs]),
                      spread([r["train_seconds"] for r in runs])[0],
                      f"{sum(r['held_from'] is not None for r in runs)}/{len(runs)}",
                      spread([r["held_from"] for r in runs])[0], spread([r["lowest_after"] for r in reached])[1]])  # fmt: skip
    return table


def display(row: list[object]) -> list[object]:
    """A cell-table row for reading: env steps with thousands separators, seconds whole."""
    steps, seconds, train, held = row[4], row[5], row[11], row[13]
    return [*row[:4], "–" if steps is None else f"{steps:,.0f}", "–" if seconds is None else f"{seconds:.0f}",
            *row[6:11], "–" if train is None else f"{train:.0f}", row[12], "–" if held is None else f"{held:,.0f}",
            row[14]]  # fmt: skip


def mean_pm_std(values: list[float | None]) -> str:
    """``mean ± std`` over seeds of the known values, as the MMER tables write it."""
    mean, std = mean_std(values)
    return "–" if mean is None else f"{format_cell(mean)} ± {format_cell(std)}"


def published_rows(bench: Benchmark, rows: list[dict[str, Any]]) -> list[list[object]]:
    """POPGym's comparison: our MMER per cell (mean ± std over seeds) beside the published ones, two ways:
    the best 100-episode mean (the cell table's "best") and, as POPGym defines it, the best mean over the
    episodes of one 65,536-step iteration (~1,285 episodes of 51 steps), which the luck of a 100-episode
    window does not lift. The published figures are of the second kind."""
    budget = f"{bench.task.total_env_steps / 1e6:g}M steps, IMPALA"
    table: list[list[object]] = []
    for (task, cell), runs in group_runs(rows).items():
        if task == bench.task.name:
            table.append([f"ours: {cell}", mean_pm_std([r["best"] for r in runs]),
                          mean_pm_std([r["best_iteration"] for r in runs]), budget, "this benchmark"])  # fmt: skip
    for p in bench.published:
        value = "not confirmed" if p.value is None else f"{p.value:.3f} ± {format_cell(p.std)}"
        table.append([p.model, "–", value, p.budget, p.source])
    return table


MMER_HEADERS = ["model", "MMER, best 100-episode mean", "MMER, best 65,536-step iteration (POPGym's)", "budget",
                "source"]  # fmt: skip


def draw(bench: Benchmark, rows: list[dict[str, Any]], folders: list[Path]) -> list[Path]:
    """The task's curves against env steps and wall-clock seconds, into each folder; the paths written."""
    hlines = {f"threshold {bench.threshold:g}": bench.threshold, **dict(bench.task.references)}
    paths = []
    for key, xlabel, suffix in (("curve", "environment steps", ""), ("curve_seconds", "seconds", "_seconds")):
        curves: dict[str, list] = {}
        for r in rows:
            x, y = r[key]
            keep = np.isfinite(x)
            if r["task"] == bench.task.name and keep.any():
                curves.setdefault(r["cell"], []).append((x[keep], y[keep]))
        for folder in folders if curves else ():
            paths.append(plot_curves(curves, folder / f"learning_{bench.task.name}{suffix}.png", xlabel=xlabel,
                                     title=f"{bench.task.name}: 100-episode mean return", hlines=hlines,
                                     ylabel="mean return, last 100 episodes"))  # fmt: skip
    return paths


def task_block(
    bench: Benchmark,
    table: list[list[object]],
    rows: list[dict[str, Any]],
    provenance: dict[str, Any] | None,
    archived: int = 0,
    drawn: bool = True,
) -> str:
    """The generated markdown of one task: provenance, the cell table, POPGym's comparison (from the run
    ``rows``), figures;
    ``archived`` runs came from a versioned runs.csv, ``drawn`` says whether any run had a curve."""
    name = bench.task.name
    if provenance:
        # The last invocation that ran this task's runs: earlier runs in the table may come from others.
        where = (f"Runs last started {provenance['date']} with `{provenance['command']}` on {provenance['machine']} "
                 f"(load average {provenance['load_start']:.1f} at the start, {provenance['load_end']:.1f} at the end).")  # fmt: skip
    else:
        where = "How these runs were started was not recorded (they predate the report's provenance file)."
    lines = [f"### {name}", "", where, f"Budget {bench.task.total_env_steps:,} env steps per run, "
             f"threshold {bench.threshold:g} on the 100-episode mean; preset `{bench.task.config.relative_to(ROOT)}`."]  # fmt: skip
    if archived:
        lines += [f"Read from a versioned runs.csv (`--scores-from`, their folders gone): {archived} of these runs; "
                  "they count in the tables, not in the figures."]  # fmt: skip
    lines += ["", markdown_table(CELL_HEADERS[1:], [display(row)[1:] for row in table if row[0] == name])]
    if bench.mmer:
        lines += ["MMER (max over training of the mean return), mean ± std over seeds:", "",
                  markdown_table(MMER_HEADERS, published_rows(bench, rows))]  # fmt: skip
    if drawn:
        lines += [f"![{name}](figures/learning_{name}.png) ![{name}, wall clock](figures/learning_{name}_seconds.png)"]
    return "\n".join(lines)


def refresh_doc(doc: Path, blocks: dict[str, str]) -> None:
    """Replace (or append) each task's generated block in ``doc``; text outside the markers is kept."""
    text = doc.read_text() if doc.exists() else "# Learning benchmark\n"
    for name, block in blocks.items():
        begin, end = f"<!-- learning:begin {name} -->", f"<!-- learning:end {name} -->"
        body = f"{begin}\n{block}\n{end}"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + body + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + body + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def report(
    benches: list[Benchmark], plans: list[RunPlan], out_dir: Path, doc: Path | None,
    archive: dict[Key, dict[str, str]] | None = None,
) -> str:  # fmt: skip
    """Write the tables and figures under ``out_dir`` (and refresh ``doc``); return the cell table.
    A planned run without a folder is taken from ``archive`` (``read_scores``) when it holds it."""
    by_name = {b.task.name: b for b in benches}
    rows = [r for r in (run_row(by_name[p.task.name], p, out_dir) or archived_run_row(by_name[p.task.name], p, archive or {})
                        for p in plans) if r is not None]  # fmt: skip
    write_csv(out_dir / "runs.csv", RUN_HEADERS, [[r[h] for h in RUN_HEADERS] for r in rows])
    table = cell_rows(rows)
    write_csv(out_dir / "cells.csv", CELL_HEADERS, table)
    text = markdown_table(CELL_HEADERS, table)
    (out_dir / "cells.md").write_text(text)
    provenance = read_provenance(out_dir)
    blocks = {}
    for bench in benches:
        task_rows = [r for r in rows if r["task"] == bench.task.name]
        if task_rows:
            drawn = draw(bench, rows, [out_dir] + ([doc.parent / "figures"] if doc else []))
            archived = sum(r["curve"] is NO_CURVE for r in task_rows)
            blocks[bench.task.name] = task_block(bench, table, task_rows, provenance.get(bench.task.name), archived,
                                                 bool(drawn))  # fmt: skip
    if doc and blocks:
        refresh_doc(doc, blocks)
    return text


def read_provenance(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else {}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    return f"{os.cpu_count()} CPUs{f' ({model})' if model else ''}, {platform.system()}"


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.exists() else []


def record_provenance(out_dir: Path, names: list[str], argv: list[str], load_start: float) -> None:
    """Remember, per task, how and where its runs were last started (read back by ``report``)."""
    entry = {"command": shlex.join(["python", "-m", "benchmarks.learning", *argv]), "machine": machine(),
             "date": datetime.date.today().isoformat(), "load_start": load_start, "load_end": os.getloadavg()[0]}  # fmt: skip
    provenance = read_provenance(out_dir)
    provenance.update({name: entry for name in names})
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True))


def check_configs(benches: list[Benchmark], cells: list[str], extra: list[str]) -> None:
    """Load every task x cell config the runs will use: a bad cell or override fails here, in one line."""
    for bench in benches:
        for cell in cells:
            if cell.count("/") != 1:
                raise ValueError(f"cell {cell!r} must look like cell/gate, e.g. lstm/ur")
            name, gate = cell.split("/")
            load_config(bench.task.config, [f"env.id={bench.task.env_id}", f"agent.core.cell={name}",
                                            f"agent.core.gate={gate}", *extra])  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", help=f"default: all ({', '.join(KNOWN)})")
    parser.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS), help="cell/gate pairs")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--steps", type=int, help="env steps per run for every task (default: each task's budget)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (1 on a 2-core machine)")
    parser.add_argument("--address", help="Ray cluster address: runs join it")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "learning")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown to refresh ('' for none)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--scores-from", nargs="+", type=Path, default=[], metavar="RUNS_CSV",
                        help="versioned runs.csv files (docs/data/learning_*.csv) whose rows stand in for planned "
                             "runs that have no folder under --out: they are reported, not run again")  # fmt: skip
    args = parser.parse_args(argv)
    if any(item.startswith("run.total_env_steps=") for item in args.set):
        parser.error("set the budget with --steps: the benchmark reads it to know which runs are finished")
    unknown = [n for n in args.tasks or () if n not in KNOWN]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; tasks: {', '.join(KNOWN)}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps {args.steps} must be positive")
    args.benches = [KNOWN[n] for n in args.tasks] if args.tasks else list(BENCHMARKS)
    if args.steps:
        args.benches = [with_budget(b, args.steps) for b in args.benches]
    try:
        check_configs(args.benches, args.cells, args.set)
    except ValueError as error:
        parser.error(str(error))
    args.plans = make_plans(tuple(b.task for b in args.benches), args.cells, args.seeds)
    try:
        args.archive = read_scores(args.scores_from)
        by_name = {b.task.name: b for b in args.benches}
        for plan in args.plans:
            if archived_instead(plan, args.out.resolve(), args.archive):  # checked now, not after the runs
                archived_run_row(by_name[plan.task.name], plan, args.archive)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    args.doc = args.doc if str(args.doc) not in ("", ".") else None
    return args


def with_budget(bench: Benchmark, steps: int) -> Benchmark:
    return replace(bench, task=replace(bench.task, total_env_steps=steps))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = args.out.resolve()
    plans = args.plans
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        load_start = os.getloadavg()[0]
        to_run = [p for p in plans if not archived_instead(p, out, args.archive)]
        statuses = run_suite(to_run, PRESET, out, args.jobs, args.address, tuple(args.set))
        print(f"{statuses.count('skipped')} skipped, {len(plans) - len(to_run)} archived, {len(plans)} planned",
              flush=True)  # fmt: skip
        if statuses.count("skipped") < len(statuses):  # something ran: this command made the figures
            record_provenance(out, [b.task.name for b in args.benches], argv, load_start)
    print(report(args.benches, plans, out, args.doc, args.archive))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
