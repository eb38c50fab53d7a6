"""TorchBeast-style plumbing: rollouts overlap by one step and replay the actor's exact states.

V-trace silently absorbs a state mismatch as "off-policyness", so these checks are
the only thing that would catch an off-by-one between actor and learner.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from actors.trajectory import Trajectory
from actors.worker import RolloutWorker
from tests.counting import CountingAgent, make_counting_env

T, B = 4, 3


def _worker(episode_length: int = 5, max_episode_steps: int | None = None, seed: int = 0) -> RolloutWorker:
    env_fn = functools.partial(make_counting_env, episode_length=episode_length, max_episode_steps=max_episode_steps)
    return RolloutWorker([env_fn] * B, CountingAgent(), unroll_length=T, actor_id=7, discount=0.9, seed=seed)


def _replay(agent: torch.nn.Module, traj: Trajectory):
    """What the learner does: unroll the agent over all T + 1 steps from ``initial_state``."""
    inputs = (torch.from_numpy(x) for x in (traj.obs, traj.prev_action, traj.prev_reward, traj.is_first))
    with torch.no_grad():
        return agent(*inputs, tuple(torch.from_numpy(s) for s in traj.initial_state))


def _count_after(traj: Trajectory, steps: int) -> np.ndarray:
    """Plain loop: the counting core's state after ``steps`` steps from ``initial_state`` -> [B, 1]."""
    count = traj.initial_state[0].astype(np.float64).copy()
    for t in range(steps):
        for b in range(traj.batch_size):
            count[b, 0] = (0.0 if traj.is_first[t, b] else count[b, 0]) + 1.0
    return count


@pytest.fixture(scope="module")
def rollouts() -> list[Trajectory]:
    worker = _worker()
    return [worker.rollout() for _ in range(4)]


def test_first_rollout_starts_a_fresh_episode(rollouts):
    first = rollouts[0]
    assert first.is_first[0].all()
    np.testing.assert_array_equal(first.initial_state[0], np.zeros((B, 1), np.float32))
    np.testing.assert_array_equal(first.obs[0], np.zeros((B, 2), np.float32))
    assert first.actor_id == 7


@pytest.mark.parametrize("field", ["obs", "prev_action", "prev_reward", "is_first", "action", "behaviour_logits",
                                   "reward", "terminated", "truncated"])  # fmt: skip
def test_consecutive_rollouts_overlap_by_exactly_one_step(rollouts, field):
    for previous, current in zip(rollouts, rollouts[1:], strict=False):
        np.testing.assert_array_equal(getattr(current, field)[0], getattr(previous, field)[T])
        # Index 1 is new: the env's total step counter has moved on by exactly one.
    for previous, current in zip(rollouts, rollouts[1:], strict=False):
        np.testing.assert_array_equal(current.obs[1, :, 1], previous.obs[T, :, 1] + 1)


def test_initial_state_is_the_state_before_index_zero(rollouts):
    for previous, current in zip(rollouts, rollouts[1:], strict=False):
        np.testing.assert_array_equal(current.initial_state[0], _count_after(previous, T))
        # Independently of the agent: the count equals steps since the episode's first step.
        expected = previous.obs[T, :, 0:1]  # step_in_episode at index T == steps already counted before it
        np.testing.assert_array_equal(current.initial_state[0], expected)


def test_replay_reproduces_behaviour_logits_exactly(rollouts):
    agent = CountingAgent()
    for traj in rollouts:
        output, _ = _replay(agent, traj)
        assert torch.equal(output.policy_logits, torch.from_numpy(traj.behaviour_logits))


def test_replay_state_after_t_steps_is_next_initial_state(rollouts):
    agent = CountingAgent()
    for previous, current in zip(rollouts, rollouts[1:], strict=False):
        inputs = (torch.from_numpy(x[:T]) for x in (previous.obs, previous.prev_action, previous.prev_reward,
                                                    previous.is_first))  # fmt: skip
        with torch.no_grad():
            _, state = agent(*inputs, tuple(torch.from_numpy(s) for s in previous.initial_state))
        assert torch.equal(state[0], torch.from_numpy(current.initial_state[0]))


def test_step_fields_follow_each_other(rollouts):
    """Inside a trajectory: the inputs at t + 1 are what followed step t (or a fresh episode)."""
    for traj in rollouts:
        done = traj.terminated | traj.truncated
        np.testing.assert_array_equal(traj.is_first[1:], done[:-1])
        np.testing.assert_array_equal(traj.reward, traj.action.astype(np.float32) + 1)  # no truncation here
        np.testing.assert_array_equal(traj.prev_action[1:], np.where(done[:-1], 0, traj.action[:-1]))
        np.testing.assert_array_equal(traj.prev_reward[1:], np.where(done[:-1], 0, traj.reward[:-1]))
        np.testing.assert_array_equal(traj.terminated, traj.obs[:, :, 0] == 4)  # episode_length 5


def test_episodes_are_reported_once_with_return_and_length(rollouts):
    """Plain loop over the new steps of every rollout, accumulating the raw rewards."""
    expected, returns, lengths = [], np.zeros(B), np.zeros(B, int)
    for index, traj in enumerate(rollouts):
        for t in range(0 if index == 0 else 1, traj.unroll_length + 1):  # index 0 repeats a counted step
            for b in range(B):
                returns[b] += traj.reward[t, b]
                lengths[b] += 1
                if traj.terminated[t, b] or traj.truncated[t, b]:
                    expected.append((returns[b], lengths[b]))
                    returns[b], lengths[b] = 0.0, 0
        actual = [(e.episode_return, e.episode_length) for e in traj.episodes]
        assert actual == expected
        expected = []
    assert sum(len(traj.episodes) for traj in rollouts) == B * ((T * len(rollouts) + 1) // 5)


def test_changed_weights_change_behaviour_but_replay_still_matches():
    worker = _worker(seed=1)
    worker.rollout()
    new_agent = CountingAgent(scale=2.0)
    worker.set_weights(5, new_agent.state_dict())
    traj = worker.rollout()
    assert traj.policy_version == 5
    output, _ = _replay(new_agent, traj)
    # Index 0 was produced by the old weights; every new step by the new ones.
    assert torch.equal(output.policy_logits[1:], torch.from_numpy(traj.behaviour_logits[1:]))
    assert not torch.equal(output.policy_logits[0], torch.from_numpy(traj.behaviour_logits[0]))


# ---------------------------------------------------------------------- the real agent and env
@pytest.mark.parametrize("cell,gate", [("lstm", "ur"), ("gru", "standard")])
def test_real_agent_replay_reproduces_behaviour_on_cartpole(cell, gate):
    from agents import Agent
    from configs.schema import AgentConfig, CoreConfig, EnvConfig
    from envs import make_env

    env_config = EnvConfig(id="CartPole-v1", max_episode_steps=12)  # truncations inside the rollouts
    probe = make_env(env_config, 0)
    agent_config = AgentConfig(mlp_sizes=(16,), core=CoreConfig(cell=cell, gate=gate, hidden_size=16))
    agent = Agent(probe.observation_space, probe.action_space, agent_config)
    env_fns = [functools.partial(make_env, env_config, seed) for seed in range(B)]
    worker = RolloutWorker(env_fns, agent, unroll_length=5, discount=0.9, seed=0)
    trajs = [worker.rollout() for _ in range(4)]
    assert any(t.truncated.any() for t in trajs) and any(t.is_first[1:].any() for t in trajs)
    for previous, current in zip(trajs, trajs[1:], strict=False):
        np.testing.assert_array_equal(current.obs[0], previous.obs[-1])
        output, _ = _replay(agent, current)
        torch.testing.assert_close(output.policy_logits, torch.from_numpy(current.behaviour_logits), rtol=0, atol=1e-6)
        inputs = (torch.from_numpy(x[:-1]) for x in (previous.obs, previous.prev_action, previous.prev_reward,
                                                     previous.is_first))  # fmt: skip
        with torch.no_grad():
            _, state = agent(*inputs, tuple(torch.from_numpy(s) for s in previous.initial_state))
        for replayed, stored in zip(state, current.initial_state, strict=True):
            torch.testing.assert_close(replayed, torch.from_numpy(stored), rtol=0, atol=1e-6)
