"""Action distributions over the policy logits, and the functions that act with them.

The agent outputs unnormalised ``policy_logits [..., num_logits]``; an ``ActionDistribution``
turns them into log-probabilities, entropies, samples and greedy actions. It holds no
parameters, so the learner (V-trace on ``log_prob``), the actors (``sample_action``) and
evaluation (``greedy_action``) share one definition of the policy.

- ``Discrete(n)``: one categorical, ``num_logits = n``, actions int64 ``[...]``.
- ``MultiDiscrete(nvec)``: K independent categoricals, ``num_logits = sum(nvec)`` split in
  order, actions int64 ``[..., K]``. The joint policy is the product of the heads, so its
  log-probability and entropy are the sums over K (V-trace then uses one importance weight
  per step, as in IMPALA).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class ActionDistribution(ABC):
    """The policy's distribution family for one action space (stateless)."""

    num_logits: int
    action_shape: tuple[int, ...]

    @abstractmethod
    def log_prob(self, logits: Tensor, action: Tensor) -> Tensor:
        """``log pi(action)`` from ``logits [..., L]`` and ``action [..., *action_shape]``; returns ``[...]``."""

    @abstractmethod
    def entropy(self, logits: Tensor) -> Tensor:
        """Entropy of the policy, ``logits [..., L] -> [...]``."""

    @abstractmethod
    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``action [..., *action_shape]`` (int64) from ``logits [..., L]``."""

    @abstractmethod
    def greedy(self, logits: Tensor) -> Tensor:
        """The most probable action ``[..., *action_shape]`` (int64)."""

    @abstractmethod
    def one_hot(self, action: Tensor) -> Tensor:
        """Encode ``action [..., *action_shape]`` as a float ``[..., num_logits]`` network input."""


def _categorical_log_prob(logits: Tensor, action: Tensor) -> Tensor:
    """``log softmax(logits)[action]``: ``logits [..., n]``, ``action [...]`` -> ``[...]``."""
    log_probs = F.log_softmax(logits, dim=-1)
    return log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def _categorical_entropy(logits: Tensor) -> Tensor:
    """``-sum_a p(a) log p(a)``: ``logits [..., n] -> [...]``."""
    log_probs = F.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def _categorical_sample(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw per row: ``logits [..., n] -> [...]`` int64."""
    probs = F.softmax(logits.detach().reshape(-1, logits.shape[-1]), dim=-1)
    draws = torch.multinomial(probs, num_samples=1, generator=generator)
    return draws.reshape(logits.shape[:-1])


class Categorical(ActionDistribution):
    """A single categorical over ``n`` actions (gymnasium ``Discrete(n)``)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Categorical needs at least one action, got n={n}")
        self.n = int(n)
        self.num_logits = self.n
        self.action_shape = ()

    def log_prob(self, logits: Tensor, action: Tensor) -> Tensor:
        return _categorical_log_prob(logits, action)

    def entropy(self, logits: Tensor) -> Tensor:
        return _categorical_entropy(logits)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return _categorical_sample(logits, generator)

    def greedy(self, logits: Tensor) -> Tensor:
        return logits.argmax(dim=-1)

    def one_hot(self, action: Tensor) -> Tensor:
        return F.one_hot(action.long(), self.n).float()

    def __repr__(self) -> str:
        return f"Categorical(n={self.n})"


class MultiCategorical(ActionDistribution):
    """K independent categoricals with ``nvec[k]`` actions each (gymnasium ``MultiDiscrete``)."""

    def __init__(self, nvec: tuple[int, ...]) -> None:
        if len(nvec) == 0 or min(nvec) < 1:
            raise ValueError(f"MultiCategorical needs K >= 1 heads of >= 1 action each, got nvec={nvec}")
        self.nvec = tuple(int(n) for n in nvec)
        self.num_logits = sum(self.nvec)
        self.action_shape = (len(self.nvec),)

    def _split(self, logits: Tensor) -> tuple[Tensor, ...]:
        """``[..., sum(nvec)] -> K x [..., nvec[k]]``, in component order."""
        return torch.split(logits, self.nvec, dim=-1)

    def log_prob(self, logits: Tensor, action: Tensor) -> Tensor:
        heads = self._split(logits)
        return sum(_categorical_log_prob(head, action[..., k]) for k, head in enumerate(heads))

    def entropy(self, logits: Tensor) -> Tensor:
        return sum(_categorical_entropy(head) for head in self._split(logits))

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack([_categorical_sample(head, generator) for head in self._split(logits)], dim=-1)

    def greedy(self, logits: Tensor) -> Tensor:
        return torch.stack([head.argmax(dim=-1) for head in self._split(logits)], dim=-1)

    def one_hot(self, action: Tensor) -> Tensor:
        parts = [F.one_hot(action[..., k].long(), n) for k, n in enumerate(self.nvec)]
        return torch.cat(parts, dim=-1).float()

    def __repr__(self) -> str:
        return f"MultiCategorical(nvec={self.nvec})"


def make_distribution(action_space: gym.Space) -> ActionDistribution:
    """The distribution for ``action_space``; raise ``ValueError`` for spaces the agent cannot act in."""
    if isinstance(action_space, gym.spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"Discrete action spaces must start at 0 (got {action_space}); wrap the env to shift them")
        return Categorical(int(action_space.n))
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        if action_space.nvec.ndim != 1 or np.any(action_space.start != 0):
            raise ValueError(f"MultiDiscrete actions must be 1-D and start at 0, got {action_space}")
        return MultiCategorical(tuple(int(n) for n in action_space.nvec))
    raise ValueError(
        f"Unsupported action space {action_space} ({type(action_space).__name__}): "
        "the agent acts in Discrete and MultiDiscrete spaces only (no continuous Box actions)"
    )


def sample_action(distribution: ActionDistribution, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample the behaviour action from ``logits [T, B, L]`` (actors); no gradient flows."""
    with torch.no_grad():
        return distribution.sample(logits, generator=generator)


def greedy_action(distribution: ActionDistribution, logits: Tensor) -> Tensor:
    """The greedy (arg-max) action from ``logits [T, B, L]`` (evaluation keeps the core state itself)."""
    with torch.no_grad():
        return distribution.greedy(logits)
