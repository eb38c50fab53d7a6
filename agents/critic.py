"""The critic in a network of its own (``agent.critic: separate``).

IMPALA shares the torso and the core between the policy and the baseline, so the baseline's
regression gradient shapes the features the policy reads. On CartPole that is what makes a good
policy fall apart (docs/value_normalisation.md, "A fifth round"): once the policy is near-perfect, a
batch that holds a rare failure carries value errors tens of times the usual size, and their gradient
through the shared torso and core moves the policy. Here the critic has its own torso and core, of the
same sizes and cell as the policy's, with the baseline head on top: the value errors move only the
critic, and the policy moves only by its own gradient (and the entropy's).

The price is a second core: about twice the core's compute in the actors and the learner. The agent's
state is the policy core's state followed by the critic core's; the gate statistics are the policy
core's, the memory that acts.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from torch import Tensor, nn

from agents.core import Core, State, core_input
from agents.heads import ValueHead
from agents.torsos import make_torso
from configs.schema import AgentConfig


class SeparateCritic(nn.Module):
    """``(observations, previous action and reward) -> V [T, B]`` through its own torso and core."""

    def __init__(self, observation_space: gym.Space, agent_config: AgentConfig, extra_input_size: int) -> None:
        super().__init__()
        self.torso = make_torso(observation_space, agent_config.torso, agent_config.mlp_sizes)
        self.core = Core(self.torso.out_features + extra_input_size, agent_config.core)
        self.baseline = ValueHead(agent_config.core.hidden_size)

    def initial_state(self, batch_size: int, device: Any = None) -> State:
        return self.core.initial_state(batch_size, device)

    def forward(
        self, folded_obs: Any, time: int, extra: Tensor, is_first: Tensor, state: State
    ) -> tuple[Tensor, State]:
        """``folded_obs`` ``[T*B, ...]`` and ``extra`` ``[T, B, E]`` -> ``(baseline [T, B], new_state)``."""
        h, new_state, _ = self.core(core_input(self.torso, folded_obs, time, extra), is_first, state)
        return self.baseline(h), new_state
