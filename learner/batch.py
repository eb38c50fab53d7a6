"""Trajectories -> one device batch: concatenate along B, one host-to-device copy per field.

Every ``Trajectory`` is time-major ``[T+1, B_i, ...]``; the batch concatenates them along
the batch axis into ``[T+1, sum(B_i), ...]`` and the initial core states along dim 0.
On CUDA each field is gathered once into pinned host memory and copied with
``non_blocking=True``, so the copies overlap and the host never waits on them one by one
(the first kernel that reads a field orders itself after its copy on the same stream).

Trajectories with a ``Context`` (``actors.context_length`` K > 0) give a ``ContextBatch``;
``replay_inputs`` prepends it to the batch's inputs so that the learner runs the agent over
K + T + 1 steps from the older state. Without one, the batch and the replay are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from actors.arrays import readonly_tensor
from actors.trajectory import INPUT_FIELDS, STEP_FIELDS, Trajectory, UnrollShape


@dataclass(frozen=True)
class ContextBatch:
    """The trajectories' contexts on the device: K steps of inputs before index 0."""

    obs: Tensor  # [K, B, *obs_shape]
    prev_action: Tensor  # [K, B, *action_shape] int64
    prev_reward: Tensor  # [K, B] float32
    is_first: Tensor  # [K, B] bool
    initial_state: tuple[Tensor, ...]  # each [B, ...], the core state before context step 0

    @property
    def length(self) -> int:
        return self.is_first.shape[0]


@dataclass(frozen=True)
class Batch(UnrollShape):
    """A learner batch on one device; time-major ``[T+1, B, ...]`` like the trajectories it came from."""

    obs: Tensor  # [T+1, B, *obs_shape], the env's dtype (uint8 images stay uint8)
    prev_action: Tensor  # [T+1, B, *action_shape] int64
    prev_reward: Tensor  # [T+1, B] float32
    is_first: Tensor  # [T+1, B] bool
    action: Tensor  # [T+1, B, *action_shape] int64
    behaviour_logits: Tensor  # [T+1, B, num_logits] float32
    reward: Tensor  # [T+1, B] float32
    terminated: Tensor  # [T+1, B] bool
    truncated: Tensor  # [T+1, B] bool
    initial_state: tuple[Tensor, ...]  # each [B, ...], the core state before index 0
    policy_versions: tuple[int, ...]  # one per trajectory, for the policy-lag metric
    context: ContextBatch | None = None  # actors.context_length > 0


class ReplayInputs(NamedTuple):
    """What the learner feeds the agent: ``[K+T+1, B]`` inputs, the state before them, and K."""

    obs: Tensor
    prev_action: Tensor
    prev_reward: Tensor
    is_first: Tensor
    state: tuple[Tensor, ...]
    context_length: int


def replay_inputs(batch: Batch) -> ReplayInputs:
    """The agent's inputs for the replay: the context's K steps (if any), then the batch's T + 1.

    Without a context this is the batch's own tensors and ``initial_state`` (no copy). With one,
    the replay starts from the context's older state, so the loss on steps K.. reaches the
    context's inputs and the weights through them; ``is_first`` inside the context resets the
    core as anywhere else.
    """
    context = batch.context
    if context is None:
        return ReplayInputs(*(getattr(batch, name) for name in INPUT_FIELDS), batch.initial_state, 0)
    joined = (torch.cat([getattr(context, name), getattr(batch, name)]) for name in INPUT_FIELDS)
    return ReplayInputs(*joined, context.initial_state, context.length)


def _to_device(arrays: Sequence[np.ndarray], dim: int, device: torch.device) -> Tensor:
    """Concatenate numpy arrays along ``dim`` and move the result to ``device`` with one copy."""
    parts = [readonly_tensor(array) for array in arrays]  # Ray's arrays are read-only; cat copies
    if device.type != "cuda":
        # A single part is copied too: the batch must not alias an actor's buffer.
        return torch.cat(parts, dim=dim).to(device)
    shape = list(parts[0].shape)
    shape[dim] = sum(part.shape[dim] for part in parts)
    pinned = torch.empty(shape, dtype=parts[0].dtype, pin_memory=True)
    torch.cat(parts, dim=dim, out=pinned)
    return pinned.to(device, non_blocking=True)


def _check_compatible(trajectories: Sequence[Trajectory]) -> None:
    """All trajectories must share T, the per-step trailing shapes and the number of state tensors."""
    first = trajectories[0]
    for index, traj in enumerate(trajectories[1:], start=1):
        for name in STEP_FIELDS:
            a, b = getattr(first, name), getattr(traj, name)
            if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:] or a.dtype != b.dtype:
                raise ValueError(
                    f"make_batch: trajectory {index} field {name} is {b.dtype}{list(b.shape)}, "
                    f"incompatible with trajectory 0's {a.dtype}{list(a.shape)} (must differ only in B)"
                )
        if len(traj.initial_state) != len(first.initial_state):
            raise ValueError(
                f"make_batch: trajectory {index} has {len(traj.initial_state)} initial-state tensors, "
                f"trajectory 0 has {len(first.initial_state)}"
            )
        lengths = [None if t.context is None else t.context.length for t in (first, traj)]
        if lengths[0] != lengths[1]:
            raise ValueError(
                f"make_batch: trajectory {index} has context length {lengths[1]}, trajectory 0 has {lengths[0]}"
            )


def make_batch(trajectories: Sequence[Trajectory], device: torch.device | str) -> Batch:
    """Stack trajectories along B into one ``Batch`` on ``device``.

    Args:
        trajectories: one or more rollouts with the same unroll length and per-step shapes
            (batch sizes may differ).
        device: where the learner runs.

    Returns:
        A ``Batch`` with every step field ``[T+1, sum(B_i), ...]`` and every initial-state
        tensor ``[sum(B_i), ...]``.
    """
    if not trajectories:
        raise ValueError("make_batch needs at least one trajectory")
    _check_compatible(trajectories)
    device = torch.device(device)
    fields = {name: _to_device([getattr(t, name) for t in trajectories], 1, device) for name in STEP_FIELDS}
    initial_state = tuple(
        _to_device([t.initial_state[i] for t in trajectories], 0, device)
        for i in range(len(trajectories[0].initial_state))
    )
    return Batch(
        **fields,
        initial_state=initial_state,
        policy_versions=tuple(int(t.policy_version) for t in trajectories),
        context=None if trajectories[0].context is None else _context_batch(trajectories, device),
    )


def _context_batch(trajectories: Sequence[Trajectory], device: torch.device) -> ContextBatch:
    """The contexts stacked along B (``Trajectory`` validated each against its own trajectory)."""
    contexts = [t.context for t in trajectories]
    fields = {name: _to_device([getattr(c, name) for c in contexts], 1, device) for name in INPUT_FIELDS}
    state = tuple(
        _to_device([c.initial_state[i] for c in contexts], 0, device) for i in range(len(contexts[0].initial_state))
    )
    return ContextBatch(**fields, initial_state=state)
