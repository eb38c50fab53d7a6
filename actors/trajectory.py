"""The record that actors hand to the learner: one rollout of ``envs_per_actor`` environments.

Time-major numpy arrays of length ``T + 1`` (the TorchBeast / scalable_agent layout):
index 0 repeats the last step of the previous rollout of the same environments, so
the learner can compute the behaviour of step 0 and bootstrap from step ``T``.

Per step ``t`` (``B = envs_per_actor``):
    obs[t], prev_action[t], prev_reward[t], is_first[t]   the agent's inputs at step t
    action[t], behaviour_logits[t]                         what the actor did at step t
    reward[t], terminated[t], truncated[t]                 what followed action[t]

``is_first[t]`` marks the first observation of an episode (the core is reset before
step t). ``terminated`` means the value after the step is zero; a time-limit
``truncated`` step has already had ``discount * V(final_obs)`` added to its reward
by the actor, and is then treated as terminal by the learner (DESIGN.md).
``initial_state`` is the core state *before* index 0, one array per state tensor.

With ``actors.context_length = K > 0`` a trajectory also carries a ``Context``: the agent's
inputs at the K steps before index 0 and the core state before the first of them, so that
the learner can replay those steps with gradient and let credit cross the boundary between
unrolls (docs/context_window.md). With K = 0, ``context`` is None and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeStats:
    """A finished episode, as the actor saw it (undiscounted, unclipped reward)."""

    episode_return: float
    episode_length: int


class UnrollShape:
    """T, B and the new steps of a ``[T+1, B]`` record (a trajectory, or a batch of them)."""

    reward: Any  # [T+1, B]

    @property
    def unroll_length(self) -> int:
        """T: the trained steps (index T only bootstraps; index 0 repeats the previous rollout's T)."""
        return self.reward.shape[0] - 1

    @property
    def batch_size(self) -> int:
        return self.reward.shape[1]

    @property
    def num_steps(self) -> int:
        """New environment steps: T x B."""
        return self.unroll_length * self.batch_size


# The agent's inputs, the per-step fields that a context repeats.
INPUT_FIELDS = ("obs", "prev_action", "prev_reward", "is_first")


@dataclass(frozen=True)
class Context:
    """The K steps before a trajectory's index 0, replayed (not trained on) by the learner.

    Step k holds the agent's inputs at env step ``k - K`` relative to index 0, so step K-1 is
    the step just before index 0. Where the worker had fewer than K earlier steps (its first
    rollouts) the oldest steps are padding: zero inputs with ``is_first`` true, after which the
    worker's own first step (``is_first`` true as well) resets the core, so padding never
    reaches an output.
    """

    obs: np.ndarray  # [K, B, *obs_shape]
    prev_action: np.ndarray  # [K, B, *action_shape] int64
    prev_reward: np.ndarray  # [K, B] float32
    is_first: np.ndarray  # [K, B] bool
    initial_state: tuple[np.ndarray, ...]  # each [B, ...], the core state before context step 0

    @property
    def length(self) -> int:
        """K, the context steps."""
        return self.is_first.shape[0]


@dataclass(frozen=True)
class Trajectory(UnrollShape):
    obs: np.ndarray  # [T+1, B, *obs_shape]
    prev_action: np.ndarray  # [T+1, B, *action_shape]
    prev_reward: np.ndarray  # [T+1, B] float32
    is_first: np.ndarray  # [T+1, B] bool
    action: np.ndarray  # [T+1, B, *action_shape] int64 (discrete actions)
    behaviour_logits: np.ndarray  # [T+1, B, num_logits] float32
    reward: np.ndarray  # [T+1, B] float32
    terminated: np.ndarray  # [T+1, B] bool
    truncated: np.ndarray  # [T+1, B] bool
    initial_state: tuple[np.ndarray, ...]  # each [B, ...]
    actor_id: int = 0
    policy_version: int = 0
    episodes: tuple[EpisodeStats, ...] = field(default_factory=tuple)
    context: Context | None = None  # K > 0 earlier steps; None when actors.context_length = 0

    def __post_init__(self) -> None:
        validate_trajectory(self)
        if self.context is not None:
            validate_context(self.context, self)


# The per-step fields, all [T+1, B, ...], in the order of the record.
STEP_FIELDS = (
    "obs",
    "prev_action",
    "prev_reward",
    "is_first",
    "action",
    "behaviour_logits",
    "reward",
    "terminated",
    "truncated",
)

_STEP_DTYPES = {
    "prev_reward": np.float32,
    "is_first": np.bool_,
    "reward": np.float32,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "behaviour_logits": np.float32,
}


def validate_trajectory(traj: Trajectory) -> None:
    """Check shapes and dtypes once, where the record is built; raise ``ValueError``."""
    time_batch = traj.reward.shape[:2]
    if traj.reward.ndim != 2 or time_batch[0] < 2:
        raise ValueError(f"Trajectory.reward must be [T+1, B] with T >= 1, got shape {traj.reward.shape}")
    for name in STEP_FIELDS:
        shape = getattr(traj, name).shape
        if shape[:2] != time_batch:
            raise ValueError(f"Trajectory.{name} has leading shape {shape[:2]}, expected [T+1, B] = {time_batch}")
    for name, dtype in _STEP_DTYPES.items():
        actual = getattr(traj, name).dtype
        if actual != dtype:
            raise ValueError(f"Trajectory.{name} has dtype {actual}, expected {np.dtype(dtype)}")
    if traj.action.shape != traj.prev_action.shape:
        raise ValueError(f"Trajectory.action {traj.action.shape} and prev_action {traj.prev_action.shape} differ")
    for i, state in enumerate(traj.initial_state):
        if state.shape[0] != time_batch[1]:
            raise ValueError(f"Trajectory.initial_state[{i}] has batch {state.shape[0]}, expected {time_batch[1]}")


def validate_context(context: Context, traj: Trajectory) -> None:
    """A context must match its trajectory in B, per-step shapes, dtypes and state layout."""
    if context.is_first.ndim != 2 or context.length < 1:
        raise ValueError(f"Context.is_first must be [K, B] with K >= 1, got shape {context.is_first.shape}")
    for name in INPUT_FIELDS:
        mine, theirs = getattr(context, name), getattr(traj, name)
        if mine.shape[0] != context.length or mine.shape[1:] != theirs.shape[1:] or mine.dtype != theirs.dtype:
            raise ValueError(
                f"Context.{name} is {mine.dtype}{list(mine.shape)}, expected {theirs.dtype}"
                f"{[context.length, *theirs.shape[1:]]} (K steps of Trajectory.{name})"
            )
    if len(context.initial_state) != len(traj.initial_state):
        raise ValueError(
            f"Context.initial_state has {len(context.initial_state)} tensors, "
            f"Trajectory.initial_state {len(traj.initial_state)}"
        )
    for i, (mine, theirs) in enumerate(zip(context.initial_state, traj.initial_state, strict=True)):
        if mine.shape != theirs.shape:
            raise ValueError(f"Context.initial_state[{i}] has shape {mine.shape}, expected {theirs.shape}")
