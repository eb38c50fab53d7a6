"""Small wrappers that make any gymnasium environment fit the actors' contract.

The actors store each observation in a numpy array ``[T+1, B, *obs_shape]``
(``actors/trajectory.py``), so what ``make_env`` returns must emit single arrays
that the environment will not overwrite later:

* ``FlattenToVector`` turns ``Dict``/``Tuple`` observations (MiniGrid, some POPGym
  tasks) into one float32 vector, dropping text fields such as MiniGrid's mission;
* ``FramesLast`` puts Atari's stacked frames last, giving the HWC images the
  convolutional torso expects;
* ``CopyObservation`` copies array observations that an environment may reuse;
* ``ActionSubset`` keeps some of a ``Discrete`` action set (named in ``env.wrappers``, e.g. MiniGrid's
  turn-left, turn-right and forward, without the pick-up/drop/toggle/done that do nothing in a maze);
* ``SeedOnFirstReset`` applies ``make_env``'s seed at the first reset.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

_FLAT_LEAVES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def numeric_part(space: spaces.Space) -> spaces.Space:
    """``space`` without its non-numeric leaves (``Text`` and the like); ``ValueError`` if nothing numeric is left.

    ``Dict`` entries that are not numeric are dropped; a ``Tuple`` must be numeric throughout
    (dropping an entry would renumber the others).
    """
    if isinstance(space, _FLAT_LEAVES):
        return space
    if isinstance(space, spaces.Dict):
        kept = {}
        for key, sub in space.spaces.items():
            try:
                kept[key] = numeric_part(sub)
            except ValueError:
                continue
        if kept:
            return spaces.Dict(kept)
    if isinstance(space, spaces.Tuple):
        return spaces.Tuple([numeric_part(sub) for sub in space.spaces])
    raise ValueError(f"observation space {space} has no numeric part that can be flattened")


def select(space: spaces.Space, obs: Any) -> Any:
    """The part of observation ``obs`` that ``space`` (from ``numeric_part``) describes."""
    if isinstance(space, spaces.Dict):
        return {key: select(sub, obs[key]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(select(sub, part) for sub, part in zip(space.spaces, obs, strict=True))
    return obs


class FlattenToVector(gym.ObservationWrapper):
    """``Dict``/``Tuple`` observation -> float32 vector ``[N]`` (gymnasium's flattening: ``Discrete`` parts one-hot)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._numeric = numeric_part(env.observation_space)
        flat = spaces.flatten_space(self._numeric)
        self.observation_space = spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return spaces.flatten(self._numeric, select(self._numeric, observation)).astype(np.float32)


class FramesLast(gym.ObservationWrapper):
    """Stacked frames ``[S, H, W]`` (gymnasium's ``FrameStackObservation``) -> HWC image ``[H, W, S]``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 3:
            raise ValueError(f"FramesLast needs a [stack, H, W] Box observation, got {space}")
        self.observation_space = spaces.Box(
            np.moveaxis(space.low, 0, -1), np.moveaxis(space.high, 0, -1), dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, 0, -1))


class CopyObservation(gym.ObservationWrapper):
    """Return a fresh copy of every array observation (environments may reuse their buffers)."""

    def observation(self, observation: Any) -> Any:
        return np.array(observation, copy=True) if isinstance(observation, np.ndarray) else observation


class ActionSubset(gym.ActionWrapper):
    """The agent chooses among ``actions`` of the wrapped ``Discrete`` space: its action ``i`` is ``actions[i]``.

    Actions that never do anything in a task (MiniGrid's ``pickup``, ``drop``, ``toggle`` and ``done`` in
    ``MiniGrid-Memory``) still take a step and dilute a uniform initial policy's exploration.
    """

    def __init__(self, env: gym.Env, actions: list[int] | tuple[int, ...]) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"ActionSubset needs a Discrete action space, got {space}")
        valid = range(int(space.start), int(space.start + space.n))
        kept = [int(action) for action in actions]
        if not kept or len(set(kept)) != len(kept) or any(action not in valid for action in kept):
            raise ValueError(
                f"ActionSubset actions {list(actions)} must be one or more distinct actions in [{valid.start}, {valid.stop - 1}]"
            )
        self._actions = kept
        self.action_space = spaces.Discrete(len(kept))

    def action(self, action: Any) -> int:
        return self._actions[int(action)]


class SeedOnFirstReset(gym.Wrapper):
    """Seed the first ``reset`` (unless the caller passes a seed) and the action space.

    gymnasium seeds an environment through ``reset(seed=...)``; this lets ``make_env``
    take the seed up front, so the same seed gives the same episodes whether or not
    the caller seeds its first reset.
    """

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._pending_seed: int | None = seed
        self.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)
