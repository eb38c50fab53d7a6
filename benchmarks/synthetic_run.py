"""One run of the supervised copy / adding benchmark (``benchmarks/synthetic.py`` runs the grid of them):
streaming, a checkpoint every N steps, resume.

A run trains one memory cell (``memory_cells.make_cell``) with a linear read-out on the task of its
``RunSpec``. Each batch is generated for its step and dropped, one line per step (step, loss, wall
seconds) is appended to the run's log ``<task>-<length>/<run>.csv``, and "solved" and the final loss
are tracked over a trailing window, so memory stays flat however many steps. Every ``checkpoint_every``
steps the weights, Adam's state and the data stream's position are saved (``<run>.pt``): a stopped run
keeps its log and continues from its last checkpoint, bit for bit, and a finished one continues when
asked for more steps. The finished run's summary is written atomically as ``<run>.json``.

``compiled`` (``--compile-chunk``, ``--compile-mode``) trains through the compiled unroll
(``memory_cells.CompiledUnroll``, the CUDA fast path of issue 13) in chunks of that many steps. It
changes the speed, not the run: it is no part of the ``RunSpec``, the run's paths or its checkpoint, so
a run continues with or without it (the losses then agree to float32 rounding, not bit for bit).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from benchmarks import tasks_supervised as tasks
from memory_cells import CompiledUnroll, make_cell, unroll

SMOOTHING = 50  # steps in the trailing mean that "solved" and "final loss" read
SOLVED_FRACTION = 0.1  # solved: the smoothed loss falls below 10% of the chance loss
GATE_SAMPLES = 4000  # values of g kept per run for the histogram
CHECKPOINT_EVERY = 50  # steps between checkpoints: ~20 s at copy-500 on one core, a few minutes at adding-2000
LOG_HEADER = "step,loss,wall_s\n"


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


@dataclass(frozen=True)
class Compiled:
    """Training passes through ``CompiledUnroll``: chunks of ``chunk_steps`` steps, ``torch.compile``'s ``mode``
    (None: its default; ``reduce-overhead`` replays CUDA graphs). A speed option, not part of a run's identity."""

    chunk_steps: int
    mode: str | None = None

    def unroll(self) -> CompiledUnroll:
        return CompiledUnroll(mode=self.mode, chunk_steps=self.chunk_steps)


class SequenceModel(nn.Module):
    """A memory cell and a linear read-out: ``inputs [T, B, I] -> outputs [T, B, O]``.

    With ``compiled`` the training passes unroll through its ``CompiledUnroll``;
    it sits beside the layers, not around them, so the ``state_dict`` (and the checkpoint) is the same.
    """

    def __init__(self, cell: str, gate: str, input_size: int, hidden_size: int, output_size: int, *,
                 compiled: Compiled | None = None, **options: Any):  # fmt: skip
        super().__init__()
        self.cell = make_cell(cell, gate, input_size, hidden_size, **options)
        self.head = nn.Linear(hidden_size, output_size)
        self.compiled_unroll = None if compiled is None else compiled.unroll()

    def forward(self, inputs: Tensor, collect_gates: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """Outputs ``[T, B, O]`` and, with ``collect_gates``, the gates ``{name: [T, B, H]}`` (else empty)."""
        time_steps, batch = inputs.shape[:2]
        # One sequence per batch entry: no resets inside it (the zero initial state is the reset).
        is_first = torch.zeros(time_steps, batch, dtype=torch.bool, device=inputs.device)
        state = self.cell.initial_state(batch, device=inputs.device)
        # The gate samples (two forward passes a run) stay eager: compiled, they would cost graphs of their own.
        run = unroll if self.compiled_unroll is None or collect_gates else self.compiled_unroll
        result = run(self.cell, inputs, is_first, state, collect_gates=collect_gates)
        gates = result[2] if collect_gates else {}
        return self.head(result[0]), gates


def gate_options(spec: RunSpec) -> dict[str, Any]:
    """Chrono needs the longest dependency it should cover: the sequence length of the task."""
    if spec.gate != "chrono":
        return {}
    return {"t_max": float(tasks.sequence_length(spec.task, spec.length))}


def make_batch(spec: RunSpec, generator: torch.Generator) -> tasks.Batch:
    return tasks.make_batch(spec.task, spec.batch_size, spec.length, generator)


def build_model(spec: RunSpec, compiled: Compiled | None = None) -> SequenceModel:
    input_size, output_size = tasks.io_sizes(spec.task)
    return SequenceModel(spec.cell, spec.gate, input_size, spec.hidden_size, output_size,
                         compiled=compiled, **gate_options(spec))  # fmt: skip


@dataclass
class LossTracker:
    """The trailing mean of the last ``window`` losses and the first (1-based) step at which it fell below
    ``threshold``: what "steps to solve" and "final loss" read, in O(window) memory however long the run."""

    threshold: float
    window: int = SMOOTHING
    recent: deque[float] = field(default_factory=deque)
    step: int = 0
    solved_at: int | None = None

    def add(self, loss: float) -> None:
        self.step += 1
        self.recent.append(loss)
        if len(self.recent) > self.window:
            self.recent.popleft()
        full = len(self.recent) == self.window
        if self.solved_at is None and full and sum(self.recent) / self.window < self.threshold:
            self.solved_at = self.step

    def mean(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("nan")


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


def run_path(out_dir: Path, spec: RunSpec) -> Path:
    """The run's summary JSON; its log (``.csv``) and checkpoint (``.pt``) sit beside it under the same stem."""
    return out_dir / f"{spec.task}-{spec.length}" / f"{spec.name}.json"


def read_log(path: Path, upto: int | None = None) -> Iterator[tuple[int, float, float]]:
    """Stream ``(step, loss, wall_s)`` from a run's log, one line at a time, stopping after step ``upto`` or
    before a line cut short when the process was killed (no newline yet), whichever comes first."""
    with path.open() as lines:
        next(lines)  # the header
        for line in lines:
            if not line.endswith("\n"):
                return
            step, loss, wall = line.split(",")
            yield int(step), float(loss), float(wall)
            if int(step) == upto:
                return


def reopen_log(path: Path, steps_done: int, tracker: LossTracker) -> TextIO:
    """Open the log for appending after step ``steps_done``: lines written after the last checkpoint are
    dropped (their steps are trained again) and the kept ones are replayed into ``tracker``."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w") as out:
        out.write(LOG_HEADER)
        if steps_done:
            for step, loss, wall in read_log(path, upto=steps_done):
                tracker.add(loss)
                out.write(f"{step},{loss!r},{wall!r}\n")
    if tracker.step != steps_done:
        raise ValueError(f"{path} holds {tracker.step} steps but its checkpoint is at step {steps_done}")
    tmp.replace(path)
    return path.open("a")


def save_checkpoint(path: Path, spec: RunSpec, step: int, wall: float, model: nn.Module, optimiser, data) -> None:
    """Everything a run needs to continue bit for bit: weights, Adam's moments and the data stream's position."""
    state = {"spec": asdict(spec), "step": step, "wall_s": wall, "model": model.state_dict(),
             "optimiser": optimiser.state_dict(), "data": data.get_state()}  # fmt: skip
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a checkpoint is either the old one or the new one, never half of each


def load_checkpoint(path: Path, spec: RunSpec, model: nn.Module, optimiser, data) -> tuple[int, float]:
    """Restore a checkpoint of the same run (any number of steps up to ``spec.steps``); return its step and wall time."""
    if not path.exists():
        return 0, 0.0
    # On the CPU: the data generator's RNG state must stay a CPU tensor; the model and Adam copy theirs to the device.
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = {**state["spec"], "steps": spec.steps}
    if saved != asdict(spec) or state["step"] > spec.steps:
        raise ValueError(f"{path} belongs to another run ({state['spec']}, step {state['step']}); use another --out")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    data.set_state(state["data"])
    return state["step"], state["wall_s"]


def train_step(spec: RunSpec, model: SequenceModel, optimiser, data: torch.Generator) -> float:
    """One optimiser step on a fresh batch; the batch is generated here and dropped after it."""
    inputs, targets = (t.to(spec.device) for t in make_batch(spec, data))
    outputs, _ = model(inputs)
    loss = tasks.task_loss(spec.task, outputs, targets)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
    optimiser.step()
    return loss.item()


@contextmanager
def flushed_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero while training. Over hundreds of blank steps the gradients through time
    shrink like f^T (0.73^480 ~ 1e-66) into the subnormal range, where x86 arithmetic is many times slower: a
    classic LSTM on copy-500 slowed from 0.35 to 1.4 s a step by step 200, and took 0.23 s with this, with the same
    loss to 7 digits. torch has no getter, so this restores torch's default (off)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_one(
    spec: RunSpec, out_dir: Path, checkpoint_every: int = CHECKPOINT_EVERY, compiled: Compiled | None = None
) -> dict[str, Any]:
    """Train one model, streaming one log line per step and a checkpoint every ``checkpoint_every`` steps;
    continue from the run's checkpoint when there is one. Return the summary (what is saved as JSON).
    ``compiled``: train through its compiled unroll (None: the eager ``unroll``)."""
    with flushed_denormals():
        return train_streaming(spec, out_dir, checkpoint_every, compiled)


def train_streaming(spec: RunSpec, out_dir: Path, checkpoint_every: int, compiled: Compiled | None) -> dict[str, Any]:
    torch.set_num_threads(1)  # one process per run; the pool provides the parallelism
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)  # make_cell draws its initial weights (and UGI biases) from torch's RNG
        model = build_model(spec, compiled).to(spec.device)
    data = torch.Generator().manual_seed(10_000 + spec.seed)
    initial = initial_gates(model, spec)  # of the freshly built model, also when resuming
    optimiser = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    json_path = run_path(out_dir, spec)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = json_path.with_suffix(".pt")
    done, wall = load_checkpoint(ckpt, spec, model, optimiser, data)
    tracker = LossTracker(SOLVED_FRACTION * tasks.chance_loss(spec.task))
    with reopen_log(json_path.with_suffix(".csv"), done, tracker) as log:
        start = time.perf_counter() - wall
        for step in range(done + 1, spec.steps + 1):
            loss = train_step(spec, model, optimiser, data)
            tracker.add(loss)
            wall = time.perf_counter() - start
            log.write(f"{step},{loss!r},{wall!r}\n")
            if step % checkpoint_every == 0 or step == spec.steps:
                log.flush()  # the log never runs behind the checkpoint
                save_checkpoint(ckpt, spec, step, wall, model, optimiser, data)
    gates = gate_sample(model, make_batch(spec, data).inputs.to(spec.device), data)
    return {
        "spec": asdict(spec),
        "steps_to_solve": tracker.solved_at,
        "solve_threshold": tracker.threshold,
        "final_loss": tracker.mean(),
        "wall_time_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "binary_frac_init": initial["binary_frac"],
        # Seconds this process spent compiling (inside wall_time_s and the first steps' wall_s); None: eager.
        "compile_s": None if model.compiled_unroll is None else sum(model.compiled_unroll.compile_seconds.values()),
        **gates,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def is_done(path: Path, spec: RunSpec) -> bool:
    """A run is done when its JSON records at least the requested steps (a longer run is not cut back)."""
    return path.exists() and json.loads(path.read_text())["spec"]["steps"] >= spec.steps


def run_and_save(
    spec: RunSpec, out_dir: Path, checkpoint_every: int = CHECKPOINT_EVERY, compiled: Compiled | None = None
) -> Path:
    """Train and write the JSON atomically (a half-written file never counts as finished)."""
    path = run_path(out_dir, spec)
    result = train_one(spec, out_dir, checkpoint_every, compiled)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    compiled = "" if result["compile_s"] is None else f" (compiling {result['compile_s']:.0f}s)"
    print(f"{spec.task}-{spec.length} {spec.name}: final {result['final_loss']:.4f} solved@{result['steps_to_solve']} "
          f"in {result['wall_time_s']:.0f}s{compiled}, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    return path
