"""A counting environment and a counting agent for the actor plumbing tests (TorchBeast style).

The environment's observation is ``[step_in_episode, total_steps]`` and its reward
is ``action + 1``, so every field of a trajectory can be predicted by hand. The
agent's core state is the number of steps since the last ``is_first``; its logits
and baseline are simple functions of that count and of its inputs, scaled by one
learnable parameter so that a weight update changes the behaviour.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

NUM_ACTIONS = 3


class CountingEnv(gym.Env):
    """Observation ``[step_in_episode, total_steps]`` (float32), reward ``action + 1``.

    Terminates after ``episode_length`` steps (None: never); raises ``RuntimeError``
    on the step that would make ``total_steps == raise_at_step``.
    """

    def __init__(self, episode_length: int | None = 5, raise_at_step: int | None = None) -> None:
        self.observation_space = gym.spaces.Box(0.0, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.episode_length = episode_length
        self.raise_at_step = raise_at_step
        self.step_in_episode = 0
        self.total_steps = 0
        self.closed = False

    def _obs(self) -> np.ndarray:
        return np.array([self.step_in_episode, self.total_steps], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.step_in_episode = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(action), action
        if self.raise_at_step is not None and self.total_steps + 1 == self.raise_at_step:
            raise RuntimeError("CountingEnv: scheduled failure")
        self.step_in_episode += 1
        self.total_steps += 1
        terminated = self.episode_length is not None and self.step_in_episode >= self.episode_length
        return self._obs(), float(action) + 1.0, terminated, False, {}

    def close(self) -> None:
        self.closed = True


def make_counting_env(
    seed: int | None = None,
    episode_length: int | None = 5,
    max_episode_steps: int | None = None,
    raise_at_step: int | None = None,
) -> gym.Env:
    """An env factory with the ``make_env(..., seed)`` shape: the seed is accepted and unused."""
    env: gym.Env = CountingEnv(episode_length, raise_at_step)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return env


class FlakyEnvFactory:
    """``factory(seed) -> env`` whose first env (per process) raises at ``raise_at_step``; later ones never do."""

    def __init__(self, raise_at_step: int, episode_length: int | None = 5) -> None:
        self.raise_at_step = raise_at_step
        self.episode_length = episode_length
        self.created = 0

    def __call__(self, seed: int | None = None) -> gym.Env:
        self.created += 1
        raise_at = self.raise_at_step if self.created == 1 else None
        return make_counting_env(seed, self.episode_length, raise_at_step=raise_at)


class AgentOutput(NamedTuple):
    policy_logits: torch.Tensor  # [T, B, NUM_ACTIONS]
    baseline: torch.Tensor  # [T, B]
    gates: dict[str, torch.Tensor]


class CategoricalDistribution:
    """A minimal categorical head (the interface of ``agents.distributions``)."""

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        flat = torch.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
        return torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])


class CountingAgent(nn.Module):
    """Core state ``(count [B, 1],)``: steps since the last ``is_first``, counting the current one.

    Per step: ``count = (0 if is_first else count) + 1``,
    ``logits = scale * 0.1 * [count, obs_0, prev_reward + prev_action]``,
    ``baseline = scale * (obs_0 + 0.5 * count)``.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.distribution = CategoricalDistribution()

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch_size, 1, device=device),)

    def forward(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        is_first: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        collect_gates: bool = False,
    ) -> tuple[AgentOutput, tuple[torch.Tensor, ...]]:
        (count,) = state
        logits, baselines = [], []
        for t in range(obs.shape[0]):
            count = torch.where(is_first[t, :, None], torch.zeros_like(count), count) + 1.0
            features = torch.stack([count[:, 0], obs[t, :, 0], prev_reward[t] + prev_action[t].float()], dim=-1)
            logits.append(self.scale * 0.1 * features)
            baselines.append(self.scale * (obs[t, :, 0] + 0.5 * count[:, 0]))
        return AgentOutput(torch.stack(logits), torch.stack(baselines), {}), (count,)


def make_counting_agent() -> CountingAgent:
    return CountingAgent()
