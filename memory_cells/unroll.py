"""Run a cell over a time-major sequence, resetting the state at episode starts.

This is the one loop that the actors (T = 1) and the learner (T = unroll length + 1) share;
``memory_cells/compiled.py`` runs the same loop (``run_steps``) under ``torch.compile``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memory_cells.base import Gates, RecurrentCell, State
from memory_cells.recurrent_product import RecurrentProduct


def unroll(
    cell: RecurrentCell,
    x: Tensor,
    is_first: Tensor,
    state: State,
    collect_gates: bool = False,
) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
    """Run ``cell`` over ``T`` steps, resetting the state to zeros before every step where ``is_first``.

    Args:
        cell: a memory cell from ``make_cell``.
        x: inputs ``[T, B, I]``.
        is_first: ``[T, B]`` bool; true where step t starts a new episode, so the state carried
            into step t is replaced by the cell's initial (zero) state for that batch entry.
        state: the state before step 0, a tuple of ``[B, ...]`` tensors.
        collect_gates: also return the gate activations of every step.
    Returns:
        ``(h [T, B, H], final_state)``, or with ``collect_gates`` ``(h, final_state, gates)``
        where ``gates`` maps ``f``, ``g`` (and ``r``/``m``) to ``[T, B, H]``.
    """
    xp = cell.project_inputs(x)  # one matmul for the input half of all T steps
    # Which steps reset anything: one host transfer up front rather than a sync per step.
    resets = is_first.bool().any(dim=1).tolist()
    weight = getattr(cell, "weight_hh", None)  # the memoryless cell has no recurrent product
    deferred = weight is not None and weight.requires_grad and torch.is_grad_enabled()
    # Training: the recurrent weight gradient is formed once over all T steps (memory_cells/recurrent_product.py).
    product = RecurrentProduct(weight, deferred) if weight is not None else None
    return run_steps(cell, xp, keep_mask(is_first, xp.dtype), state, collect_gates, resets, product)


def keep_mask(is_first: Tensor, dtype: torch.dtype) -> Tensor:
    """``[T, B]`` bool -> ``[T, B, 1]`` of ``dtype``: 0 where the state is reset before step t, 1 elsewhere."""
    return (~is_first.bool()).to(dtype).unsqueeze(-1)


def run_steps(
    cell: RecurrentCell,
    xp: Tensor,
    keep: Tensor,
    state: State,
    collect_gates: bool,
    resets: list[bool] | None = None,
    product: RecurrentProduct | None = None,
) -> tuple[Tensor, State] | tuple[Tensor, State, Gates]:
    """The time loop of ``unroll`` over projected inputs ``xp [T, B, W]`` and ``keep [T, B, 1]``.

    ``resets[t]`` says whether step t resets anyone (host bools), so that the other steps skip the
    mask; None multiplies the mask in at every step, which needs no host sync and so can be traced
    (``memory_cells/compiled.py``). ``product`` is the recurrent product (plain autograd when None).
    """
    outputs, gate_steps = [], []
    # unbind, not xp[t]: the backward of T selects would zero-fill a [T, B, W] gradient T times.
    for t, xp_t in enumerate(xp.unbind(0)):
        if resets is None or resets[t]:
            # The initial state is zeros, so a reset is a multiplication by the keep mask.
            state = tuple(s * keep[t].view(-1, *([1] * (s.dim() - 1))) for s in state)
        h, state, gates = cell.recurrent_step(xp_t, state, collect_gates, product)
        outputs.append(h)
        gate_steps.append(gates)
    h = torch.stack(outputs)
    if not collect_gates:
        return h, state
    return h, state, {k: torch.stack([g[k] for g in gate_steps]) for k in gate_steps[0]} if gate_steps else {}
