"""The paper's copy and adding tasks trained directly on the memory cells (no RL).

    python -m benchmarks.synthetic                            # CPU size: copy delay 100, adding length 200
    python -m benchmarks.synthetic --paper --device cuda      # the paper's sizes (copy 500, adding 2000; GPU)
    python -m benchmarks.synthetic --task copy --gates standard chrono ur --seeds 0 1 2 --jobs 2

Every cell x gate variant of the registry (``memory_cells.make_cell``) runs a few seeds with Adam
1e-3 and gradient-norm clip 1 (Gu et al. 2020, section 4.1). Each run is saved as one JSON file, so
an interrupted benchmark resumes where it stopped; then ``report`` draws a learning-curve PNG per
task (median over seeds, min-max shaded), a gate histogram PNG (the effective forget gate g after
training, on a fresh batch) and a markdown table of steps-to-solve and final loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks import tasks_supervised as tasks
from benchmarks.plotting import markdown_table, plot_curves, plot_histograms, smooth, write_csv
from memory_cells import GATES, make_cell, unroll

ROOT = Path(__file__).resolve().parent.parent
SMOOTHING = 50  # steps in the trailing mean that "solved" and "final loss" read
SOLVED_FRACTION = 0.1  # solved: the smoothed loss falls below 10% of the chance loss
GATE_SAMPLES = 4000  # values of g kept per run for the histogram


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``length`` is the copy delay or the adding sequence length."""

    task: str
    length: int
    cell: str
    gate: str
    seed: int
    hidden_size: int = 64
    batch_size: int = 16
    steps: int = 1500
    learning_rate: float = 1e-3
    grad_clip: float = 1.0
    device: str = "cpu"

    @property
    def name(self) -> str:
        return f"{self.cell}-{self.gate}-s{self.seed}"


class SequenceModel(nn.Module):
    """A memory cell and a linear read-out: ``inputs [T, B, I] -> outputs [T, B, O]``."""

    def __init__(self, cell: str, gate: str, input_size: int, hidden_size: int, output_size: int, **options: Any):
        super().__init__()
        self.cell = make_cell(cell, gate, input_size, hidden_size, **options)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, inputs: Tensor, collect_gates: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """Outputs ``[T, B, O]`` and, with ``collect_gates``, the gates ``{name: [T, B, H]}`` (else empty)."""
        time_steps, batch = inputs.shape[:2]
        # One sequence per batch entry: no resets inside it (the zero initial state is the reset).
        is_first = torch.zeros(time_steps, batch, dtype=torch.bool, device=inputs.device)
        state = self.cell.initial_state(batch, device=inputs.device)
        result = unroll(self.cell, inputs, is_first, state, collect_gates=collect_gates)
        gates = result[2] if collect_gates else {}
        return self.head(result[0]), gates


def gate_options(spec: RunSpec) -> dict[str, Any]:
    """Chrono needs the longest dependency it should cover: the sequence length of the task."""
    if spec.gate != "chrono":
        return {}
    return {"t_max": float(sequence_length(spec))}


def sequence_length(spec: RunSpec) -> int:
    return spec.length + 20 if spec.task == "copy" else spec.length


def make_batch(spec: RunSpec, generator: torch.Generator) -> tasks.Batch:
    if spec.task == "copy":
        return tasks.copy_batch(spec.batch_size, spec.length, generator)
    return tasks.adding_batch(spec.batch_size, spec.length, generator)


def task_loss(spec: RunSpec, outputs: Tensor, targets: Tensor) -> Tensor:
    """Copy: cross-entropy at the markers; adding: MSE of the last step's scalar output."""
    if spec.task == "copy":
        return tasks.copy_loss(outputs, targets)
    return tasks.adding_loss(outputs[-1, :, 0], targets)


def chance_loss(task: str) -> float:
    return tasks.copy_chance() if task == "copy" else tasks.adding_chance()


def build_model(spec: RunSpec) -> SequenceModel:
    input_size, output_size = (tasks.copy_input_size(8), 8) if spec.task == "copy" else (2, 1)
    return SequenceModel(spec.cell, spec.gate, input_size, spec.hidden_size, output_size, **gate_options(spec))


def steps_to_solve(losses: np.ndarray, threshold: float, window: int = SMOOTHING) -> int | None:
    """The first step (1-based) at which the trailing mean of ``window`` losses is below ``threshold``."""
    if losses.size < window:
        return None
    means = np.convolve(losses, np.ones(window) / window, mode="valid")  # means[i] covers steps i..i+window-1
    below = np.flatnonzero(means < threshold)
    return int(below[0] + window) if below.size else None


def gate_sample(model: SequenceModel, inputs: Tensor, generator: torch.Generator) -> dict[str, Any]:
    """A random sample of g (the effective forget gate) over all steps, units and sequences, and its binary fraction."""
    with torch.no_grad():
        _, gates = model(inputs, collect_gates=True)
    if "g" not in gates:  # the memoryless control has no gates
        return {"g": [], "binary_frac": None}
    g = gates["g"].flatten().cpu()
    binary = float(((g < 0.05) | (g > 0.95)).float().mean())
    pick = torch.randint(0, g.numel(), (min(GATE_SAMPLES, g.numel()),), generator=generator)
    return {"g": [round(float(v), 4) for v in g[pick]], "binary_frac": binary}


def initial_gates(model: SequenceModel, spec: RunSpec) -> dict[str, Any]:
    """The gate sample before training, on its own data stream (the training batches stay those of the seed)."""
    probe = torch.Generator().manual_seed(20_000 + spec.seed)
    return gate_sample(model, make_batch(spec, probe).inputs.to(spec.device), probe)


def train_one(spec: RunSpec) -> dict[str, Any]:
    """Train one model; return its losses per step and its summary (also what is saved as JSON)."""
    torch.set_num_threads(1)  # one process per run; the pool provides the parallelism
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)  # make_cell draws its initial weights (and UGI biases) from torch's RNG
        model = build_model(spec).to(spec.device)
    data = torch.Generator().manual_seed(10_000 + spec.seed)
    initial = initial_gates(model, spec)
    optimiser = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    losses = np.empty(spec.steps)
    start = time.perf_counter()
    for step in range(spec.steps):
        inputs, targets = (t.to(spec.device) for t in make_batch(spec, data))
        outputs, _ = model(inputs)
        loss = task_loss(spec, outputs, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimiser.step()
        losses[step] = loss.item()
    wall = time.perf_counter() - start
    threshold = SOLVED_FRACTION * chance_loss(spec.task)
    gates = gate_sample(model, make_batch(spec, data).inputs.to(spec.device), data)
    return {
        "spec": asdict(spec),
        "losses": [round(float(v), 6) for v in losses],
        "steps_to_solve": steps_to_solve(losses, threshold),
        "solve_threshold": threshold,
        "final_loss": float(losses[-SMOOTHING:].mean()),
        "wall_time_s": wall,
        "binary_frac_init": initial["binary_frac"],
        **gates,
    }


def run_path(out_dir: Path, spec: RunSpec) -> Path:
    return out_dir / f"{spec.task}-{spec.length}" / f"{spec.name}.json"


def run_and_save(spec: RunSpec, out_dir: Path) -> Path:
    """Train and write the JSON atomically (a half-written file never counts as finished)."""
    path = run_path(out_dir, spec)
    result = train_one(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    print(f"{spec.task}-{spec.length} {spec.name}: final {result['final_loss']:.4f} "
          f"solved@{result['steps_to_solve']} in {result['wall_time_s']:.0f}s", flush=True)  # fmt: skip
    return path


def run_grid(specs: list[RunSpec], out_dir: Path, jobs: int) -> list[Path]:
    """Run every spec whose JSON does not exist yet, ``jobs`` at a time; return all result paths."""
    todo = [s for s in specs if not run_path(out_dir, s).exists()]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already done; running {len(todo)}", flush=True)
    if jobs <= 1:
        for spec in todo:
            run_and_save(spec, out_dir)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(run_and_save, todo, [out_dir] * len(todo)))
    return [run_path(out_dir, s) for s in specs]


def variant_label(spec: dict[str, Any]) -> str:
    return f"{spec['cell']}/{spec['gate']}"


def summary_rows(results: list[dict[str, Any]]) -> list[list[object]]:
    """One row per task x variant: seeds solved, median steps to solve, final loss (median, min, max), binary g."""
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
        rows.append([
            task, label, f"{len(solved)}/{len(runs)}", float(np.median(solved)) if solved else None,
            float(np.median(finals)), float(finals.min()), float(finals.max()),
            float(np.median(binary_init)) if binary_init else None, float(np.median(binary)) if binary else None,
            float(np.median([r["wall_time_s"] for r in runs])),
        ])  # fmt: skip
    return rows


TABLE_HEADERS = ["task", "variant", "solved", "median steps to solve", "final loss (median)", "min", "max",
                 "binary g frac at init", "binary g frac after", "wall s/run"]  # fmt: skip


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
    parser.add_argument("--paper", action="store_true",
                        help="the paper's sizes: copy delay 480 (length 500), adding 2000, hidden 256, batch 10, "
                             "20000 steps, seeds 0-2 (explicit flags after it do not override it)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "synthetic")
    parser.add_argument("--report-only", action="store_true", help="only redraw figures and table from saved runs")
    args = parser.parse_args(argv)
    if args.paper:
        args.copy_delay, args.adding_length, args.hidden, args.batch, args.steps = 480, 2000, 256, 10, 20_000
        args.seeds = [0, 1, 2]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = make_specs(args)
    if not args.report_only:
        run_grid(specs, args.out, args.jobs)
    done = [p for p in (run_path(args.out, s) for s in specs) if p.exists()]
    results = [json.loads(p.read_text()) for p in done]
    print(report(results, args.out, chance={t: chance_loss(t) for t in args.task}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
