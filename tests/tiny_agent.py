"""A tiny agent that follows the Agent contract (DESIGN.md), for testing the learner on its own.

    x_t = [tanh(W_obs obs_t), one_hot(prev_action_t), prev_reward_t]
    f_t = sigma(W_f [x_t, h_{t-1}] + b_f)                 (the single gate, reported as "f")
    h_t = f_t * h_{t-1} + (1 - f_t) * tanh(W_u [x_t, h_{t-1}]),  h reset to 0 where is_first_t
    policy_logits_t, baseline_t = linear policy head, agents.heads.ValueHead of h_t

Vector observations (``Box``) only; actions ``Discrete`` or ``MultiDiscrete`` through the
real ``agents.distributions``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from agents.agent import AgentOutput
from agents.distributions import make_distribution
from agents.heads import ValueHead
from configs.schema import AgentConfig


class TinyAgent(nn.Module):
    def __init__(self, observation_space: gym.Space, action_space: gym.Space, agent_config: AgentConfig) -> None:
        super().__init__()
        self.agent_config = agent_config  # kept so that checkpoints can name a config mismatch
        self.distribution = make_distribution(action_space)
        hidden = agent_config.core.hidden_size
        obs_size = int(np.prod(observation_space.shape))
        torso_size = agent_config.mlp_sizes[-1] if agent_config.mlp_sizes else obs_size
        self.torso = nn.Linear(obs_size, torso_size)
        core_input = torso_size + self.distribution.num_logits + 1
        self.forget = nn.Linear(core_input + hidden, hidden)
        self.update_gate = nn.Linear(core_input + hidden, hidden)
        self.policy = nn.Linear(hidden, self.distribution.num_logits)
        self.value_head = ValueHead(hidden)  # the real head: PopArt's statistics live in it
        self.hidden_size = hidden

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor, ...]:
        return (torch.zeros(batch_size, self.hidden_size, device=device),)

    def forward(
        self,
        obs: Tensor,
        prev_action: Tensor,
        prev_reward: Tensor,
        is_first: Tensor,
        state: tuple[Tensor, ...],
        collect_gates: bool = False,
    ):
        time, batch = obs.shape[:2]
        device = self.policy.weight.device
        features = torch.tanh(self.torso(torch.as_tensor(obs, device=device).float().reshape(time, batch, -1)))
        action_input = self.distribution.one_hot(torch.as_tensor(prev_action, device=device))
        reward_input = torch.as_tensor(prev_reward, device=device).float().unsqueeze(-1)
        x = torch.cat([features, action_input, reward_input], dim=-1)
        is_first = torch.as_tensor(is_first, device=device).bool()
        (h,) = state
        outputs, forget_gates = [], []
        for t in range(time):
            h = torch.where(is_first[t].unsqueeze(-1), torch.zeros_like(h), h)
            xh = torch.cat([x[t], h], dim=-1)
            f = torch.sigmoid(self.forget(xh))
            h = f * h + (1 - f) * torch.tanh(self.update_gate(xh))
            outputs.append(h)
            forget_gates.append(f)
        hs = torch.stack(outputs)
        gates = {"f": torch.stack(forget_gates)} if collect_gates else {}
        output = AgentOutput(self.policy(hs), self.value_head(hs), gates)
        return output, (h,)
