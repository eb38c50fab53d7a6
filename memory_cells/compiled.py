"""``unroll`` compiled whole by ``torch.compile``: the fast path on CUDA (issue 13), same signature and results.

On a GPU the eager unroll is launch-bound: each step runs some 30 small kernels (the recurrent
matmul, then the gate arithmetic one op at a time, each with its backward), 10-16x slower than
cuDNN's fused LSTM (docs/bench_cells.md). Traced over all T steps, the compiler fuses each step's
gate arithmetic, forward and backward, into a few kernels around the recurrent matmul.

What differs from ``unroll``, so that the loop traces into one graph with no breaks:
- Plain autograd products. ``RecurrentProduct``'s deferred weight gradient is an
  ``autograd.Function`` that appends to a Python list in its backward: a side effect that the
  compiler cannot trace. Here the compiler sees the whole backward graph instead.
- The reset mask is multiplied in at every step. ``unroll`` reads which steps reset anyone to the
  host first (one sync) and skips the mask elsewhere; multiplying by 1 changes nothing (bit for
  bit, values and gradients), and inside a fused kernel it costs nothing.
- Static shapes (``dynamic=False``): a run's learner unroll has one shape ``[T + 1, B]``, so it is
  compiled once (once more for the calls that collect gates, once per different layer width).
  Actors step T = 1 on the CPU, where ``auto`` keeps the eager path.
- Long sequences in chunks (``chunk_steps``): tracing grows with the steps traced (16 s for T = 81 on
  the CPU), so the supervised tasks' T = 500-2000 would spend minutes compiling one graph. Chunked, a
  sequence runs as consecutive chunks of N steps through one graph of N steps, the state (and its
  gradient) carried from chunk to chunk; a shorter last chunk compiles one graph more.

The plain ``unroll`` stays the reference and the CPU default; tests/test_compiled_unroll.py checks
that both give the same outputs, final state, gates and gradients for every cell x gate variant.
"""

from __future__ import annotations

import contextlib
import logging
import time
import types
from collections.abc import Callable
from typing import Any

import torch
import torch._functorch.config
from torch import Tensor

from memory_cells.base import Gates, RecurrentCell, State
from memory_cells.unroll import keep_mask, run_steps

log = logging.getLogger(__name__)

COMPILE_CHOICES = ("auto", "on", "off")


def use_compiled(compile_choice: str, device: torch.device) -> bool:
    """Whether to unroll with the compiled path: ``on``, or ``auto`` on a CUDA device.

    ``auto`` is off on the CPU: there the arithmetic, not the launches, dominates (the eager cells
    are within 1.2-1.5x of the fused LSTM, docs/bench_cells.md), and compiling would cost each
    actor a C++ build for nothing. It is also off where this torch cannot compile at all (torch
    before 2.4 on Python 3.12, for one; the project allows torch 2.2).
    """
    if compile_choice not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile choice {compile_choice!r}; valid choices: {', '.join(COMPILE_CHOICES)}")
    if compile_choice != "auto":
        return compile_choice == "on"
    if device.type != "cuda":
        return False
    import torch._dynamo  # here, not at the top: it takes a second to import, which a CPU process never needs

    return torch._dynamo.is_dynamo_supported()


def masked_unroll(
    cell: RecurrentCell, x: Tensor, is_first: Tensor, state: State, collect_gates: bool = False
) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
    """``unroll`` in traceable form: plain autograd products and the reset mask at every step."""
    xp = cell.project_inputs(x)
    return run_steps(cell, xp, keep_mask(is_first, xp.dtype), state, collect_gates)


def call_key(cell: RecurrentCell, x: Tensor, state: State, collect_gates: bool) -> tuple:
    """What a call's compiled graph depends on, in the terms that the log names (the variant, x's shape,
    dtype and device, gates or not, gradient or not, which of x and the state need a gradient); a call
    with a new key compiles a new graph."""
    spec = getattr(cell, "spec", None)
    variant = f"{spec.cell}/{spec.gate}" if spec else type(cell).__name__
    needs_grad = tuple(t.requires_grad for t in (x, *state))
    return variant, tuple(x.shape), x.dtype, x.device.type, collect_gates, torch.is_grad_enabled(), needs_grad


def unroll_in_chunks(
    run: Callable[..., Any],
    chunk_steps: int,
    cell: RecurrentCell,
    x: Tensor,
    is_first: Tensor,
    state: State,
    collect_gates: bool = False,
) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
    """``run`` (an unroll) over consecutive chunks of ``chunk_steps`` steps of ``x [T, B, I]`` and ``is_first
    [T, B]`` (the last chunk shorter when ``chunk_steps`` does not divide T), each chunk starting from the
    state that the one before ended in, autograd linking them; outputs and gates concatenated along time.
    Equal to ``run`` over the whole sequence: each step sees the same state, reset mask and input."""
    outputs, gates = [], []
    for x_chunk, first_chunk in zip(x.split(chunk_steps), is_first.split(chunk_steps), strict=True):
        result = run(cell, x_chunk, first_chunk, state, collect_gates)
        outputs.append(result[0])
        state = result[1]
        if collect_gates:
            gates.append(result[2])
    h = torch.cat(outputs)
    if not collect_gates:
        return h, state
    return h, state, {name: torch.cat([g[name] for g in gates]) for name in gates[0]}


def own_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own.

    ``torch.compile`` keeps its compiled graphs, and counts recompilations against its limit (8),
    per code object. A copy per ``CompiledUnroll`` gives each its own cache: the graphs live and die
    with the core that owns them, and a process that builds many cores (tests, benchmarks) does not
    pile every variant's graphs onto the one ``masked_unroll``, which would hit the limit.
    """
    code = fn.__code__.replace()  # an equal but distinct code object
    return types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def backward_compiled_now() -> contextlib.AbstractContextManager:
    """Within it, ``torch.compile`` builds the backward graph with the forward instead of at the first
    backward pass, so that the first call's wall time is the whole compile cost. A torch without the
    switch (it is recent) compiles as usual and the figure then leaves out the backward."""
    config = torch._functorch.config
    if hasattr(config, "force_non_lazy_backward_lowering"):
        return config.patch(force_non_lazy_backward_lowering=True)
    return contextlib.nullcontext()


class CompiledUnroll:
    """``unroll``'s signature and results through ``torch.compile(masked_unroll)``, compiled once per call shape.

    The first call of each shape compiles (tens of seconds); its wall time, backward included
    (``backward_compiled_now``), is logged and kept in ``compile_seconds`` so that a run or a
    benchmark can report it. Holds no parameters: wrapping a function, not the module, leaves the
    agent's ``state_dict`` keys as they are.

    Args:
        backend: ``torch.compile``'s backend; ``inductor`` generates fused kernels, ``aot_eager``
            traces the same graphs without code generation (the tests' choice).
        mode: ``torch.compile``'s mode (None: its default). With ``reduce-overhead`` (CUDA graphs) each
            call starts a new CUDA-graph step, which reuses the graphs' output memory: finish with a call's
            results (its backward included) before the next call.
        chunk_steps: run sequences longer than this as chunks of this many steps through one graph
            (``unroll_in_chunks``); None compiles the whole sequence as one graph. One key of
            ``compile_seconds`` per chunk shape: the full chunks', and the last chunk's where
            ``chunk_steps`` does not divide T.
    """

    def __init__(
        self, backend: str | Callable[..., Any] = "inductor", mode: str | None = None, chunk_steps: int | None = None
    ) -> None:
        if chunk_steps is not None and chunk_steps < 1:
            raise ValueError(f"chunk_steps must be at least 1 (or None for whole sequences), got {chunk_steps}")
        self.backend, self.mode, self.chunk_steps = backend, mode, chunk_steps
        self.compile_seconds: dict[tuple, float] = {}
        self._compiled: Callable[..., Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The compiled function holds code caches that do not pickle; a copy compiles (and times) its own.
        return {**self.__dict__, "_compiled": None, "compile_seconds": {}}

    def _function(self) -> Callable[..., Any]:
        if self._compiled is None:
            self._compiled = torch.compile(
                own_copy(masked_unroll), backend=self.backend, mode=self.mode, fullgraph=True, dynamic=False
            )
        return self._compiled

    def __call__(
        self, cell: RecurrentCell, x: Tensor, is_first: Tensor, state: State, collect_gates: bool = False
    ) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
        if self.mode == "reduce-overhead":
            # CUDA graphs replay into the same output buffers. A call (all its chunks, which feed each
            # other) is one step, so the mark goes here and never between chunks. With it, chunked runs
            # trained on an H200 (docs/bench_cells.md); whole-sequence graphs still failed in the backward.
            torch.compiler.cudagraph_mark_step_begin()
        if self.chunk_steps is None or x.shape[0] <= self.chunk_steps:
            return self._run(cell, x, is_first, state, collect_gates)
        if torch.is_grad_enabled():
            # Every later chunk starts from a state that needs a gradient (the chunk before's output); the
            # compiler specialises on that, so a first state that needs none (the usual zeros) would compile
            # a graph of its own. A leaf that needs a gradient (computed, then dropped) shares the graph.
            state = tuple(s if s.requires_grad else s.detach().requires_grad_() for s in state)
        return unroll_in_chunks(self._run, self.chunk_steps, cell, x, is_first, state, collect_gates)

    def _run(
        self, cell: RecurrentCell, x: Tensor, is_first: Tensor, state: State, collect_gates: bool
    ) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
        """One call of the compiled function (a whole sequence or one chunk), timed when it compiles."""
        key = call_key(cell, x, state, collect_gates)
        if key in self.compile_seconds:
            return self._function()(cell, x, is_first, state, collect_gates)
        start = time.perf_counter()
        with backward_compiled_now():
            result = self._function()(cell, x, is_first, state, collect_gates)
        self.compile_seconds[key] = time.perf_counter() - start
        log.info("compiled the %s unroll for x %s (%s, %s, gates: %s) in %.1f s", key[0], list(key[1]), key[2],
                 key[3], collect_gates, self.compile_seconds[key])  # fmt: skip
        return result
