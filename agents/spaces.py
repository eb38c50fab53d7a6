"""Observation spaces -> flat float features: which spaces the agent reads, and how.

``flat_size(space)`` and ``encode(space, obs)`` walk a gymnasium space recursively:

- ``Box``: flattened and cast to float; ``uint8`` values are pixels and are divided by 255,
  so raw environment observations can be fed unchanged.
- ``Discrete(n, start)``: one-hot of ``obs - start`` (n features).
- ``MultiDiscrete(nvec)``: one one-hot per component, concatenated (``sum(nvec)`` features).
- ``MultiBinary``: flattened 0/1 floats.
- ``Dict`` / ``Tuple``: the encodings of their sub-spaces concatenated, in the space's own
  key / index order (observations arrive as ``dict`` / ``tuple`` of tensors).

Anything else (``Text``, ``Graph``, ``Sequence``, ...) is refused by ``check_observation_space``
with a message naming it. Observations are ``[N, *shape]``: the caller folds time into batch.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_LEAVES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def check_observation_space(space: gym.Space, path: str = "observation") -> None:
    """Raise ``ValueError`` naming the first sub-space (and where it sits) that the agent cannot read."""
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            check_observation_space(sub, f"{path}[{key!r}]")
    elif isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            check_observation_space(sub, f"{path}[{i}]")
    elif not isinstance(space, _LEAVES):
        raise ValueError(
            f"Unsupported observation space at {path}: {space} ({type(space).__name__}); "
            "supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of them"
        )


def is_image(space: gym.Space) -> bool:
    """An ``(H, W, C)`` ``uint8`` Box: what the convolutional torsos read."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


def flat_size(space: gym.Space) -> int:
    """The number of features ``encode`` produces for one observation of ``space``."""
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        subspaces = space.spaces.values() if isinstance(space, gym.spaces.Dict) else space.spaces
        return sum(flat_size(sub) for sub in subspaces)
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.sum())
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        return int(np.prod(space.shape, dtype=np.int64))
    raise ValueError(f"Unsupported observation space {space}")


def to_float(space: gym.spaces.Box, obs: Tensor) -> Tensor:
    """Cast a Box observation to float32, scaling ``uint8`` pixels to ``[0, 1]``."""
    if space.dtype == np.uint8:
        return obs.float() / 255.0
    return obs.float()


def encode(space: gym.Space, obs: Any) -> Tensor:
    """Encode a batch of observations ``[N, *shape]`` (nested for Dict/Tuple) as ``[N, flat_size(space)]``."""
    if isinstance(space, gym.spaces.Dict):
        return torch.cat([encode(sub, obs[key]) for key, sub in space.spaces.items()], dim=-1)
    if isinstance(space, gym.spaces.Tuple):
        return torch.cat([encode(sub, part) for sub, part in zip(space.spaces, obs, strict=True)], dim=-1)
    obs = torch.as_tensor(obs)
    batch = obs.shape[0]
    if isinstance(space, gym.spaces.Discrete):
        return F.one_hot(obs.long() - int(space.start), int(space.n)).float().reshape(batch, -1)
    if isinstance(space, gym.spaces.MultiDiscrete):
        # One one-hot per component, each of its own width nvec[k]; components flattened in C order.
        flat = (obs.long() - torch.as_tensor(space.start, device=obs.device)).reshape(batch, -1)
        nvec = space.nvec.reshape(-1).tolist()
        return torch.cat([F.one_hot(flat[:, k], n) for k, n in enumerate(nvec)], dim=-1).float()
    if isinstance(space, gym.spaces.Box):
        return to_float(space, obs).reshape(batch, -1)
    if isinstance(space, gym.spaces.MultiBinary):
        return obs.float().reshape(batch, -1)
    raise ValueError(f"Unsupported observation space {space}")


def fold_time(
    space: gym.Space, obs: Any, num_leading: int, device: torch.device | None = None
) -> tuple[Any, tuple[int, ...]]:
    """Merge the leading ``num_leading`` dims (``[T, B, ...] -> [T*B, ...]``) of every leaf of ``obs``.

    Leaves (tensors or numpy arrays) are moved to ``device``. Returns the folded observation and
    the leading shape, read from the first leaf.
    """
    if isinstance(space, gym.spaces.Dict):
        folded = {key: fold_time(sub, obs[key], num_leading, device) for key, sub in space.spaces.items()}
        leading = next(iter(folded.values()))[1]
        return {key: value[0] for key, value in folded.items()}, leading
    if isinstance(space, gym.spaces.Tuple):
        folded = [fold_time(sub, part, num_leading, device) for sub, part in zip(space.spaces, obs, strict=True)]
        return tuple(value[0] for value in folded), folded[0][1]
    obs = torch.as_tensor(obs, device=device)
    leading = tuple(obs.shape[:num_leading])
    return obs.reshape(-1, *obs.shape[num_leading:]), leading
