"""Trajectories -> one device batch: concatenate along B, one host-to-device copy per field.

Every ``Trajectory`` is time-major ``[T+1, B_i, ...]``; the batch concatenates them along
the batch axis into ``[T+1, sum(B_i), ...]`` and the initial core states along dim 0.
On CUDA each field is gathered once into pinned host memory and copied with
``non_blocking=True``, so the copies overlap and the host never waits on them one by one
(the first kernel that reads a field orders itself after its copy on the same stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from actors.arrays import readonly_tensor
from actors.trajectory import STEP_FIELDS, Trajectory, UnrollShape


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
    )
