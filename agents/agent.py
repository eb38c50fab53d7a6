"""The IMPALA actor-critic: torso -> [previous action, previous reward] -> memory core -> heads.

    features_t = torso(obs_t)                                              [T, B, F]
    x_t        = concat(features_t, one_hot(prev_action_t), clip(prev_reward_t, -1, 1))
                 (features_t alone with ``agent.prev_action_reward: false``)
    h_t, s_t   = core(x_t, s_{t-1}), with s reset to the initial state where is_first_t
    logits_t, baseline_t = heads(h_t)                 (each head: optional hidden ReLU layers, then linear)

With ``agent.critic: separate`` the baseline reads ``h'_t`` of a second torso and core of the same
sizes, fed the same inputs, so that the value regression never moves the policy's features; the
state is then the policy core's tensors followed by the critic core's.

Actors call it with T = 1 and carry ``state``; the learner calls it once over the whole
unroll from the stored initial state; both give the same outputs for the same inputs
(one code path: the core is always unrolled over ``[T, B]``). The previous reward is
clipped to [-1, 1] as an input feature only, as in scalable_agent and TorchBeast. Actions
are sampled outside the module (``agents.distributions.sample_action`` / ``greedy_action``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import torch
from torch import Tensor, nn

from agents.core import Core, State
from agents.distributions import ActionDistribution, make_distribution
from agents.heads import ActorCriticHeads, ValueHead
from agents.spaces import fold_time
from agents.torsos import make_torso
from configs.schema import AgentConfig


class AgentOutput(NamedTuple):
    policy_logits: Tensor  # [T, B, num_logits]
    baseline: Tensor  # [T, B]
    gates: dict[str, Tensor]  # {f, r, g, layer1/f, ...}: [T, B, H]; empty unless collect_gates


class Agent(nn.Module):
    """Actor-critic with a memory-cell core, built from the env's spaces and ``AgentConfig``.

    Raises ``ValueError`` at construction for an observation or action space it cannot handle.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, agent_config: AgentConfig) -> None:
        super().__init__()
        self.agent_config = agent_config  # checkpoints record it, to refuse weights of another model
        self.observation_space = observation_space
        self.action_space = action_space
        self.distribution: ActionDistribution = make_distribution(action_space)
        self.torso = make_torso(observation_space, agent_config.torso, agent_config.mlp_sizes, agent_config.layer_norm)
        # + one-hot previous action (num_logits wide for Discrete and MultiDiscrete) + previous reward.
        feedback_size = self.distribution.num_logits + 1 if agent_config.prev_action_reward else 0
        core_input_size = self.torso.out_features + feedback_size
        self.core = Core(core_input_size, agent_config.core)
        self.critic: CriticBody | None = None
        if agent_config.critic == "separate":
            torso = make_torso(observation_space, agent_config.torso, agent_config.mlp_sizes, agent_config.layer_norm)
            self.critic = CriticBody(torso, Core(core_input_size, agent_config.core))
        self.heads = ActorCriticHeads(
            agent_config.core.hidden_size, self.distribution.num_logits, tuple(agent_config.head_sizes)
        )

    @property
    def value_head(self) -> ValueHead:
        """The baseline head, whose PopArt statistics the learner moves (``learner/popart.py``)."""
        return self.heads.baseline

    @property
    def num_logits(self) -> int:
        return self.distribution.num_logits

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The core state at the start of an episode: a flat tuple of ``[batch_size, ...]`` tensors
        (the policy core's, then the separate critic's core's where there is one)."""
        state = self.core.initial_state(batch_size, device)
        if self.critic is not None:
            state = state + self.critic.core.initial_state(batch_size, device)
        return state

    def forward(
        self,
        obs: Any,
        prev_action: Tensor,
        prev_reward: Tensor,
        is_first: Tensor,
        state: State,
        collect_gates: bool = False,
    ) -> tuple[AgentOutput, State]:
        """One unroll of T steps for B environments.

        Args:
            obs: ``[T, B, *obs_shape]`` in the env's own dtype (a dict / tuple of such for Dict / Tuple spaces).
            prev_action: ``[T, B, *action_shape]`` int64, the action taken before each observation.
            prev_reward: ``[T, B]``, the reward that followed ``prev_action``.
            is_first: ``[T, B]`` bool, true on an episode's first observation (the core is reset first).
            state: the core state before step 0, as returned by ``initial_state`` or a previous call.
            collect_gates: also return the core's gate activations.

        Returns:
            ``(AgentOutput(policy_logits [T, B, L], baseline [T, B], gates), state after step T-1)``.
        """
        device = self.heads.policy.weight.device
        folded_obs, (time, batch) = fold_time(self.observation_space, obs, num_leading=2, device=device)
        feedback: list[Tensor] = []
        if self.agent_config.prev_action_reward:
            action_input = self.distribution.one_hot(torch.as_tensor(prev_action, device=device))
            reward_input = torch.as_tensor(prev_reward, device=device).float().clamp(-1.0, 1.0).unsqueeze(-1)
            feedback = [action_input, reward_input]
        is_first = torch.as_tensor(is_first, device=device).bool()
        state = tuple(torch.as_tensor(tensor, device=device) for tensor in state)
        split = self.core.num_state_tensors
        expected = split + (self.critic.core.num_state_tensors if self.critic is not None else 0)
        if len(state) != expected:
            raise ValueError(f"agent state has {len(state)} tensors, expected {expected} (see Agent.initial_state)")
        policy_state, critic_state = state[:split], state[split:]
        features = self.torso(folded_obs).reshape(time, batch, -1)
        h, new_state, gates = self.core(with_feedback(features, feedback), is_first, policy_state, collect_gates)
        h_value = None
        if self.critic is not None:
            critic_features = self.critic.torso(folded_obs).reshape(time, batch, -1)
            h_value, critic_new_state, _ = self.critic.core(
                with_feedback(critic_features, feedback), is_first, critic_state
            )
            new_state = new_state + critic_new_state
        heads = self.heads(h, h_value)
        return AgentOutput(heads.policy_logits, heads.baseline, gates), new_state


def with_feedback(features: Tensor, feedback: list[Tensor]) -> Tensor:
    """The core's input: the torso's features [T, B, F], then the previous action and reward where given."""
    return torch.cat([features, *feedback], dim=-1) if feedback else features


class CriticBody(nn.Module):
    """The separate critic's own torso and core (``agent.critic: separate``); the baseline head reads its output."""

    def __init__(self, torso: nn.Module, core: Core) -> None:
        super().__init__()
        self.torso = torso
        self.core = core
