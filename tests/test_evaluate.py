"""Evaluation (actors/evaluate.py): the core state carried through an episode, seeds, greedy actions, threads."""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from actors.evaluate import evaluate
from agents.agent import AgentOutput
from agents.distributions import make_distribution


class RecordingAgent(nn.Module):
    """Fixed logits; its state counts the steps since the episode's start, and every call is recorded."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.distribution = make_distribution(gym.spaces.Discrete(len(logits)))
        self.logits = torch.tensor(logits)
        self.calls: list[tuple[int, bool, int]] = []  # (state passed in, is_first, torch threads)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor]:
        return (torch.zeros(batch_size, device=device),)

    def forward(self, obs, prev_action, prev_reward, is_first, state) -> tuple[AgentOutput, tuple[Tensor]]:
        (steps,) = state
        self.calls.append((int(steps.item()), bool(is_first.item()), torch.get_num_threads()))
        logits = self.logits.expand(1, 1, -1)
        return AgentOutput(logits, torch.zeros(1, 1), {}), (steps + 1,)


def test_the_state_runs_through_the_episode_and_starts_fresh_in_the_next():
    env, agent = gym.make("CartPole-v1"), RecordingAgent([0.0, 0.0])
    result = evaluate(env, agent, episodes=2, greedy=False, seed=3)
    first_length = result.lengths[0]
    assert [c[0] for c in agent.calls] == list(range(first_length)) + list(range(result.lengths[1]))
    assert [c[1] for c in agent.calls] == [True] + [False] * (first_length - 1) + [True] + [False] * (
        result.lengths[1] - 1
    )
    assert result.returns == tuple(float(n) for n in result.lengths)  # CartPole: +1 a step


def test_the_same_seed_plays_the_same_episodes():
    env = gym.make("CartPole-v1")
    first = evaluate(env, RecordingAgent([0.0, 0.0]), episodes=4, greedy=False, seed=11)
    again = evaluate(env, RecordingAgent([0.0, 0.0]), episodes=4, greedy=False, seed=11)
    other = evaluate(env, RecordingAgent([0.0, 0.0]), episodes=4, greedy=False, seed=12)
    assert first.lengths == again.lengths and first.mode == "sampled"
    assert first.lengths != other.lengths


def test_greedy_takes_the_most_likely_action_every_step():
    # Always pushing right topples CartPole in ~10 steps; a sampled policy at these odds would rarely do it 3 times alike.
    env, agent = gym.make("CartPole-v1"), RecordingAgent([-0.1, 0.1])
    result = evaluate(env, agent, episodes=3, greedy=True, seed=0)
    assert result.mode == "greedy" and max(result.lengths) < 15
    sampled = evaluate(env, RecordingAgent([-0.1, 0.1]), episodes=3, greedy=False, seed=0)
    assert sum(sampled.lengths) > sum(result.lengths)


def test_episodes_run_on_one_thread_and_the_callers_count_is_restored():
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else before
    torch.set_num_threads(wanted)
    try:
        agent = RecordingAgent([0.0, 0.0])
        evaluate(gym.make("CartPole-v1"), agent, episodes=1, greedy=True, seed=0)
        assert {c[2] for c in agent.calls} == {1}
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
