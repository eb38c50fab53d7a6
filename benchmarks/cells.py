"""Speed of the memory cells: forward + backward of ``unroll`` over ``[T, B, H]`` for every variant.

Compared with the fused ``torch.nn.LSTM`` (no resets: it cannot reset mid-sequence) and with
``lstm/standard``. The cells get inputs with episode resets (``is_first``) inside the sequence,
as the learner does. Prints a table of the median (or min) milliseconds over ``--repeats`` interleaved rounds.
``--compiled`` adds each named variant again through ``memory_cells.CompiledUnroll`` (the CUDA fast path,
row ``<variant> compiled``); its compile time, paid in the untimed warm-up round, is printed apart.
``--compile-chunks 0 20`` times each compiled variant once per chunk length (0: the whole sequence as one
graph; N: chunks of N steps through one graph of N steps, row ``<variant> compiled/N``), since a graph's
compile time grows with the steps it traces; ``--compile-mode reduce-overhead`` replays CUDA graphs.

    python -m benchmarks.cells                       # all variants, T = 20 and 80, B = 32, H = 256
    python -m benchmarks.cells --threads 1 --variants lstm/standard lstm/ur
    python -m benchmarks.cells --device cuda         # on a GPU (the fused LSTM is then cuDNN's)
    python -m benchmarks.cells --device cuda --batch 256 --lengths 80 --variants lstm/standard lstm/ur \
        --compiled lstm/standard lstm/ur             # issue 13's goal: compiled lstm/ur within 2x of cuDNN
    python -m benchmarks.cells --device cuda --batch 256 --lengths 80 --variants lstm/ur --compiled lstm/ur \
        --compile-chunks 0 20                        # one graph of 80 steps against chunks of 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch

from memory_cells import CELLS, GATES, CompiledUnroll, make_cell, unroll

SHAPES = ((20, 32, 256), (80, 32, 256))
FUSED = "torch.nn.LSTM"
COMPILED = " compiled"  # the suffix of a compiled variant's row (then "/N" where it runs in chunks of N steps)
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Timings:
    """``ms``: ``{name: [ms per shape]}``; ``compile_s``: ``{compiled name: [seconds per shape]}``."""

    ms: dict[str, list[float]]
    compile_s: dict[str, list[float]]


def compiled_name(variant: str, chunk_steps: int) -> str:
    """The row of ``variant`` compiled whole (``chunk_steps`` 0) or in chunks of ``chunk_steps`` steps."""
    return variant + COMPILED + (f"/{chunk_steps}" if chunk_steps else "")


def variant_of(name: str) -> str:
    """The ``cell/gate`` of a row, compiled or not."""
    return name.split(COMPILED)[0]


def all_variants() -> list[str]:
    """Every ``cell/gate`` of the registry, ``none`` last."""
    return [f"{c}/{g}" for c in CELLS if c != "none" for g in GATES] + ["none/standard"]


def time_ms(fn: Callable[[], None], device: torch.device) -> float:
    """Wall time of one call of ``fn`` in milliseconds (after the GPU's queued work has finished)."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return 1e3 * (time.perf_counter() - start)


def episode_starts(t: int, b: int, generator: torch.Generator) -> torch.Tensor:
    """``is_first [T, B]`` with about one episode start per 10 steps per entry (and none at t = 0)."""
    is_first = torch.rand(t, b, generator=generator) < 0.1
    is_first[0] = False
    return is_first


def cell_step_fn(
    variant: str, t: int, b: int, h: int, device: torch.device, unroll_fn: Callable = unroll
) -> Callable[[], None]:
    """A closure running forward + backward of ``unroll_fn`` (``unroll`` or a ``CompiledUnroll``) for ``variant``."""
    generator = torch.Generator().manual_seed(0)
    cell_name, gate = variant.split("/")
    cell = make_cell(cell_name, gate, h, h).to(device)
    x = torch.randn(t, b, h, generator=generator).to(device).requires_grad_()
    is_first = episode_starts(t, b, generator).to(device)
    state = cell.initial_state(b, device=device)

    def run() -> None:
        out, _ = unroll_fn(cell, x, is_first, state)
        out.sum().backward()

    return run


def fused_lstm_fn(t: int, b: int, h: int, device: torch.device) -> Callable[[], None]:
    """A closure running forward + backward of the fused ``torch.nn.LSTM`` (no resets) at ``[t, b, h]``."""
    lstm = torch.nn.LSTM(h, h).to(device)
    x = torch.randn(t, b, h, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()

    def run() -> None:
        out, _ = lstm(x)
        out.sum().backward()

    return run


def measure(
    variants: list[str],
    shapes: tuple[tuple[int, int, int], ...],
    repeats: int,
    statistic: str = "median",
    device: torch.device = CPU,
    compiled: Sequence[str] = (),
    backend: str = "inductor",
    chunks: Sequence[int] = (0,),
    mode: str | None = None,
) -> Timings:
    """Milliseconds per shape for the fused LSTM, every variant and every ``compiled`` variant.

    The runs are interleaved (round-robin over all entries, ``repeats`` rounds after one warm-up round),
    so that every entry sees the same mix of load on a shared machine; ``statistic`` (median or min)
    then summarises each entry's rounds. The warm-up round compiles the compiled entries (``backend``);
    their compile seconds (forward and backward) are reported apart, never mixed into the timings. Each
    compiled variant gets one row per entry of ``chunks`` (0: whole sequences; N: chunks of N steps), compiled
    with ``mode`` (``torch.compile``'s; None: its default).
    """
    reduce = statistics.median if statistic == "median" else min
    results, compile_s = {}, {}
    for shape in shapes:
        unrolls = {  # fresh per shape: one compile each
            compiled_name(v, n): CompiledUnroll(backend, mode, chunk_steps=n or None) for v in compiled for n in chunks
        }
        fns = {FUSED: fused_lstm_fn(*shape, device)} | {v: cell_step_fn(v, *shape, device) for v in variants}
        fns |= {name: cell_step_fn(variant_of(name), *shape, device, run) for name, run in unrolls.items()}
        for fn in fns.values():
            fn()
        rounds = [{name: time_ms(fn, device) for name, fn in fns.items()} for _ in range(repeats)]
        for name in fns:
            results.setdefault(name, []).append(reduce([r[name] for r in rounds]))
        for name, run in unrolls.items():
            compile_s.setdefault(name, []).append(sum(run.compile_seconds.values()))
    return Timings(results, compile_s)


def format_table(results: dict[str, list[float]], shapes: tuple[tuple[int, int, int], ...]) -> str:
    """A markdown table: ms, ratio to torch.nn.LSTM and ratio to lstm/standard, per shape."""
    header = "| variant |" + "".join(f" T={t} ms | x LSTM | x lstm/std |" for t, _, _ in shapes)
    lines = [header, "|---|" + "---:|" * 3 * len(shapes)]
    base = results.get("lstm/standard")
    for name, times in results.items():
        cells = []
        for k, ms in enumerate(times):
            vs_std = f"{ms / base[k]:.2f}" if base else "-"
            cells.append(f" {ms:.2f} | {ms / results[FUSED][k]:.2f} | {vs_std} |")
        lines.append(f"| {name} |" + "".join(cells))
    return "\n".join(lines)


def format_compile_times(compile_s: dict[str, list[float]], shapes: tuple[tuple[int, int, int], ...]) -> str:
    """One line per compiled entry: the seconds its first call took to compile, per shape."""
    return "\n".join(
        f"compile {name.replace(COMPILED + '/', ' in chunks of ').replace(COMPILED, '')}: "
        + ", ".join(f"T={t} {s:.1f} s" for (t, _, _), s in zip(shapes, times, strict=True))
        for name, times in compile_s.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=all_variants(), help="cell/gate names (default: all)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each runs every entry once)")
    parser.add_argument("--statistic", default="median", choices=["median", "min"], help="summary of the rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="*", default=[t for t, _, _ in SHAPES])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--compiled", nargs="*", default=[], help="cell/gate names to time compiled too")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend of the compiled rows")
    parser.add_argument("--compile-chunks", type=int, nargs="+", default=[0],
                        help="chunk lengths of the compiled rows, one row each (0: the whole sequence)")  # fmt: skip
    parser.add_argument(
        "--compile-mode", default=None, help="torch.compile mode of the compiled rows (reduce-overhead)"
    )
    args = parser.parse_args()
    if any(n < 0 for n in args.compile_chunks):
        parser.error(f"--compile-chunks must be 0 (whole) or positive, got {args.compile_chunks}")
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = tuple((t, args.batch, args.hidden) for t in args.lengths)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, B={args.batch}, H={args.hidden}, {args.statistic} of {args.repeats}")
    timings = measure(args.variants, shapes, args.repeats, args.statistic, device, args.compiled, args.backend,
                      args.compile_chunks, args.compile_mode)  # fmt: skip
    print(format_table(timings.ms, shapes))
    if timings.compile_s:
        print(format_compile_times(timings.compile_s, shapes))


if __name__ == "__main__":
    main()
