"""The paper's copy and adding tasks trained directly on the memory cells (no RL).

    python -m benchmarks.synthetic                            # CPU size: copy delay 100, adding length 200
    python -m benchmarks.synthetic --paper --device cuda      # the paper's sizes (copy 500, adding 2000; GPU)
    python -m benchmarks.synthetic --task copy --gates standard chrono ur --seeds 0 1 2 --jobs 2
    python -m benchmarks.synthetic --paper --device cuda --compile-chunk 25   # compiled unroll, chunks of 25 steps

Every cell x gate variant of the registry (``memory_cells.make_cell``) runs a few seeds with Adam
1e-3 and gradient-norm clip 1 (Gu et al. 2020, section 4.1). A run streams: each batch is generated
for its step and dropped, one line per step (step, loss, wall seconds) is appended to the run's log
``<task>-<length>/<run>.csv``, and "solved" and the final loss are tracked over a trailing window,
so memory stays flat however many steps. Every ``--checkpoint-every`` steps the weights, Adam's
state and the data stream's position are saved (``<run>.pt``): a stopped run keeps its log and
continues from its last checkpoint, bit for bit, and a finished one continues when asked for more
``--steps``. A finished run's summary is one JSON file (``<run>.json``), so an interrupted benchmark
resumes where it stopped; then ``report`` draws a learning-curve PNG per task (median over seeds,
min-max shaded), a gate histogram PNG (the effective forget gate g after training, on a fresh batch)
and a markdown table of steps-to-solve, final loss and seconds per step; a run not finished yet is in the
table and the curves as far as its log goes (its steps so far), without a gate sample. One run (streaming,
checkpoints, resume) is ``benchmarks/synthetic_run.py``; this module is the grid, its report and the CLI.

``--compile-chunk N`` trains through the compiled unroll (``memory_cells.CompiledUnroll``, issue 13's CUDA fast
path) in chunks of N steps: one graph of N steps reused along the sequence, where compiling all 500-2000 steps
at once would take minutes. A speed option only: it is not part of a run's identity, so a run started eager
continues compiled and the other way round, and the summary records the seconds spent compiling (``compile_s``).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from benchmarks import tasks_supervised as tasks
from benchmarks.plotting import markdown_table, plot_curves, plot_histograms, smooth, write_csv
from benchmarks.synthetic_run import (
    CHECKPOINT_EVERY,
    SOLVED_FRACTION,
    Compiled,
    LossTracker,
    RunSpec,
    is_done,
    read_log,
    run_and_save,
    run_path,
)
from memory_cells import GATES

ROOT = Path(__file__).resolve().parent.parent


def run_grid(
    specs: list[RunSpec],
    out_dir: Path,
    jobs: int,
    checkpoint_every: int = CHECKPOINT_EVERY,
    compiled: Compiled | None = None,
) -> list[Path]:
    """Run (or continue) every spec not done yet, ``jobs`` at a time; return all result paths."""
    todo = [s for s in specs if not is_done(run_path(out_dir, s), s)]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already done; running {len(todo)}", flush=True)
    rest = [[out_dir] * len(todo), [checkpoint_every] * len(todo), [compiled] * len(todo)]
    if jobs <= 1:
        list(map(run_and_save, todo, *rest))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(run_and_save, todo, *rest))
    return [run_path(out_dir, s) for s in specs]


def load_result(path: Path, warmup: int = 2) -> dict[str, Any]:
    """A run's summary with its losses read back from the log, and its median seconds per step after ``warmup``."""
    result = json.loads(path.read_text())
    steps = result["spec"]["steps"]
    log = np.array([(loss, wall) for _, loss, wall in read_log(path.with_suffix(".csv"), upto=steps)]).reshape(-1, 2)
    result["losses"] = log[:, 0]
    result["median_step_s"] = median_step_seconds(log[:, 1], warmup)
    return result


def median_step_seconds(walls: np.ndarray, warmup: int) -> float | None:
    """The median wall time of a step after the first ``warmup`` (compiling, allocating); None if none is left."""
    step_s = np.diff(walls[warmup:])
    return float(np.median(step_s)) if step_s.size else None


def load_partial(log: Path, spec: RunSpec, warmup: int = 2) -> dict[str, Any] | None:
    """A run started but not finished (its log, no summary yet), read back from its log as far as it got: the
    same keys as ``load_result`` with ``steps`` the steps logged, and no gate sample (taken at the end). None
    when the log holds no step."""
    rows = list(read_log(log))
    if not rows:
        return None
    tracker = LossTracker(SOLVED_FRACTION * tasks.chance_loss(spec.task))
    for _, loss, _ in rows:
        tracker.add(loss)
    walls = np.array([wall for _, _, wall in rows])
    return {
        "spec": {**asdict(spec), "steps": len(rows)}, "in_progress": True, "losses": np.array([r[1] for r in rows]),
        "steps_to_solve": tracker.solved_at, "solve_threshold": tracker.threshold, "final_loss": tracker.mean(),
        "wall_time_s": float(walls[-1]), "median_step_s": median_step_seconds(walls, warmup),
        "binary_frac_init": None, "binary_frac": None, "g": [],
    }  # fmt: skip


def load_results(out_dir: Path, specs: list[RunSpec]) -> list[dict[str, Any]]:
    """Every started run of ``specs``: the finished ones from their summaries, the others from their logs
    (a run cut short stays in the report with the steps it reached)."""
    results = []
    for spec in specs:
        path = run_path(out_dir, spec)
        if path.exists():
            results.append(load_result(path))
        elif path.with_suffix(".csv").exists() and (partial := load_partial(path.with_suffix(".csv"), spec)):
            results.append(partial)
    return results


def variant_label(spec: dict[str, Any]) -> str:
    return f"{spec['cell']}/{spec['gate']}"


def summary_rows(results: list[dict[str, Any]]) -> list[list[object]]:
    """One row per task x variant: steps trained (the fewest of its seeds), seeds solved, median steps to solve,
    final loss (median, min, max), binary g, wall time per run and per step (medians)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        key = (f"{r['spec']['task']}-{r['spec']['length']}", variant_label(r["spec"]))
        groups.setdefault(key, []).append(r)
    rows = []

    def order(key: tuple[str, str]) -> tuple[str, str, int]:  # registry order of the gates within a task
        cell, gate = key[1].split("/")
        return key[0], cell, GATES.index(gate)

    for (task, label), runs in sorted(groups.items(), key=lambda item: order(item[0])):
        solved = [r["steps_to_solve"] for r in runs if r["steps_to_solve"] is not None]
        finals = np.array([r["final_loss"] for r in runs])
        binary = [r["binary_frac"] for r in runs if r["binary_frac"] is not None]
        binary_init = [r["binary_frac_init"] for r in runs if r.get("binary_frac_init") is not None]
        step_s = [r["median_step_s"] for r in runs if r.get("median_step_s") is not None]
        rows.append([
            task, label, min(r["spec"]["steps"] for r in runs), f"{len(solved)}/{len(runs)}",
            float(np.median(solved)) if solved else None,
            float(np.median(finals)), float(finals.min()), float(finals.max()),
            float(np.median(binary_init)) if binary_init else None, float(np.median(binary)) if binary else None,
            float(np.median([r["wall_time_s"] for r in runs])), float(np.median(step_s)) if step_s else None,
        ])  # fmt: skip
    return rows


TABLE_HEADERS = ["task", "variant", "steps", "solved", "median steps to solve", "final loss (median)", "min", "max",
                 "binary g frac at init", "binary g frac after", "wall s/run", "s/step"]  # fmt: skip


def report(results: list[dict[str, Any]], out_dir: Path, chance: dict[str, float]) -> str:
    """Draw the curves and gate histograms of every task and write ``table.md`` / ``table.csv``; return the table."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_task.setdefault(f"{r['spec']['task']}-{r['spec']['length']}", []).append(r)
    for key, runs in by_task.items():
        task = runs[0]["spec"]["task"]
        curves: dict[str, list] = {}
        gates: dict[str, list[float]] = {}
        for r in sorted(runs, key=lambda r: GATES.index(r["spec"]["gate"])):
            losses = np.asarray(r["losses"])
            curves.setdefault(variant_label(r["spec"]), []).append((np.arange(1, losses.size + 1), smooth(losses, 20)))
            if r["g"]:
                gates.setdefault(variant_label(r["spec"]), []).extend(r["g"])
        ylabel = "cross-entropy at the markers (nats)" if task == "copy" else "MSE"
        plot_curves(curves, out_dir / key / "curves.png", title=f"{key}: training loss (20-step mean)",
                    xlabel="optimiser step", ylabel=ylabel, logy=task == "adding",  # MSE spans decades
                    hlines={"chance": chance[task], "solved": SOLVED_FRACTION * chance[task]})  # fmt: skip
        plot_histograms({k: np.asarray(v) for k, v in gates.items()}, out_dir / key / "gates.png",
                        title=f"{key}: effective forget gate g after training", xlabel="g")  # fmt: skip
    rows = summary_rows(results)
    table = markdown_table(TABLE_HEADERS, rows)
    (out_dir / "table.md").write_text(table)
    write_csv(out_dir / "table.csv", TABLE_HEADERS, rows)
    return table


def make_specs(args: argparse.Namespace) -> list[RunSpec]:
    lengths = {"copy": args.copy_delay, "adding": args.adding_length}
    base = RunSpec(task="copy", length=0, cell="lstm", gate="standard", seed=0, hidden_size=args.hidden,
                   batch_size=args.batch, steps=args.steps, device=args.device)  # fmt: skip
    return [
        replace(base, task=task, length=lengths[task], cell=cell, gate=gate, seed=seed)
        for seed in args.seeds  # seeds outermost: an interrupted benchmark still covers every variant
        for task in args.task
        for cell in args.cells
        for gate in args.gates
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", default=["copy", "adding"], choices=["copy", "adding"])
    parser.add_argument("--copy-delay", type=int, default=100, help="blanks between tokens and markers")
    parser.add_argument("--adding-length", type=int, default=200)
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=["lstm", "gru"])
    parser.add_argument("--gates", nargs="+", default=list(GATES), choices=list(GATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps per run")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY,
                        help="steps between checkpoints; a stopped run continues from its last one, and a finished "
                             "run continues when asked for more --steps")  # fmt: skip
    parser.add_argument("--compile-chunk", type=int, default=None, metavar="N",
                        help="train through the compiled unroll (torch.compile; the CUDA fast path) in chunks of N "
                             "steps; default: the eager unroll. Not part of a run's identity: a run resumes either "
                             "way")  # fmt: skip
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile's mode with --compile-chunk (reduce-overhead: CUDA graphs)")  # fmt: skip
    parser.add_argument("--paper", action="store_true",
                        help="the paper's sizes: copy delay 480 (length 500), adding 2000, hidden 256, batch 10, "
                             "20000 steps, seeds 0-2 (explicit flags after it do not override it)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "synthetic")
    parser.add_argument("--report-only", action="store_true", help="only redraw figures and table from saved runs")
    args = parser.parse_args(argv)
    if args.compile_mode is not None and args.compile_chunk is None:
        parser.error("--compile-mode needs --compile-chunk (the eager unroll compiles nothing)")
    if args.paper:
        args.copy_delay, args.adding_length, args.hidden, args.batch, args.steps = 480, 2000, 256, 10, 20_000
        args.seeds = [0, 1, 2]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = make_specs(args)
    if not args.report_only:
        compiled = None if args.compile_chunk is None else Compiled(args.compile_chunk, args.compile_mode)
        run_grid(specs, args.out, args.jobs, args.checkpoint_every, compiled)
    results = load_results(args.out, specs)
    if running := sum(r.get("in_progress", False) for r in results):
        print(f"{running} run(s) not finished: reported as far as their logs go (the steps column)")
    print(report(results, args.out, chance={t: tasks.chance_loss(t) for t in args.task}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
