"""RolloutWorker: truncation bootstrap, termination, failing environments, weights, seeding."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from actors.worker import RolloutWorker, worker_seeds
from tests.counting import CountingAgent, FlakyEnvFactory, make_counting_env

DISCOUNT = 0.9


def _worker(env_fn, num_envs: int = 2, unroll_length: int = 6, **kwargs) -> RolloutWorker:
    return RolloutWorker([env_fn] * num_envs, CountingAgent(), unroll_length, discount=DISCOUNT, seed=3, **kwargs)


def _counts(traj) -> np.ndarray:
    """Plain loop: the counting core's count *after* each step t (as the actor had it) -> [T+1, B]."""
    count = traj.initial_state[0][:, 0].astype(np.float64).copy()
    out = np.zeros(traj.reward.shape)
    for t in range(traj.reward.shape[0]):
        for b in range(traj.batch_size):
            count[b] = (0.0 if traj.is_first[t, b] else count[b]) + 1.0
            out[t, b] = count[b]
    return out


def test_truncation_adds_discounted_value_of_the_final_observation():
    # Time limit 3, never terminates: steps 2, 5 of each env are cut (first rollout has 7 steps).
    worker = _worker(functools.partial(make_counting_env, episode_length=None, max_episode_steps=3))
    traj = worker.rollout()
    counts = _counts(traj)
    cut = np.zeros_like(traj.truncated)
    cut[[2, 5]] = True
    np.testing.assert_array_equal(traj.truncated, cut)
    assert not traj.terminated.any()
    for t in range(traj.reward.shape[0]):
        for b in range(traj.batch_size):
            raw = float(traj.action[t, b]) + 1.0
            if cut[t, b]:
                # V(final_obs) from the core state after step t: one more step (count + 1),
                # final obs step_in_episode = 3; the CountingAgent's baseline is obs_0 + 0.5 * count.
                value = 3.0 + 0.5 * (counts[t, b] + 1.0)
                assert traj.reward[t, b] == pytest.approx(raw + DISCOUNT * value, abs=1e-5)
                assert traj.is_first[t + 1, b] and traj.prev_action[t + 1, b] == 0 and traj.prev_reward[t + 1, b] == 0
            else:
                assert traj.reward[t, b] == raw
    # Episode returns are undiscounted raw rewards, without the bootstrap.
    raw_returns = [float(traj.action[t0 : t0 + 3, b].sum() + 3) for t0 in (0, 3) for b in range(2)]
    assert [e.episode_return for e in traj.episodes] == raw_returns
    assert [e.episode_length for e in traj.episodes] == [3, 3, 3, 3]


def test_termination_never_bootstraps_even_when_also_truncated():
    # Episodes of 3 steps under a time limit of 3: gymnasium reports both flags at once.
    worker = _worker(functools.partial(make_counting_env, episode_length=3, max_episode_steps=3))
    traj = worker.rollout()
    assert traj.terminated[[2, 5]].all() and not traj.truncated.any()
    np.testing.assert_array_equal(traj.reward, traj.action + 1.0)


def test_core_and_env_state_carry_across_rollouts():
    worker = _worker(functools.partial(make_counting_env, episode_length=None), unroll_length=2)
    trajs = [worker.rollout() for _ in range(3)]
    total_steps = np.concatenate([trajs[0].obs[:, :, 1]] + [t.obs[1:, :, 1] for t in trajs[1:]])
    np.testing.assert_array_equal(total_steps, np.arange(7)[:, None].repeat(2, axis=1))
    np.testing.assert_array_equal(trajs[2].initial_state[0][:, 0], [4.0, 4.0])
    assert worker.stats().env_steps == 2 * 7


def test_an_env_that_raises_is_recreated_and_its_episode_discarded():
    factory = FlakyEnvFactory(raise_at_step=3, episode_length=4)
    # One env per factory call so that only env 0 raises (on its 3rd step, index 2).
    worker = RolloutWorker(
        [functools.partial(factory, 0), functools.partial(make_counting_env, episode_length=4)],
        CountingAgent(),
        unroll_length=7,
        discount=DISCOUNT,
        seed=0,
    )
    traj = worker.rollout()
    assert worker.stats().env_errors == 1 and factory.created == 2
    assert traj.truncated[2, 0] and not traj.terminated[2, 0]
    # The failed step's reward is the actor's own baseline at obs_2: obs_0 + 0.5 * count = 2 + 0.5 * 3.
    assert traj.reward[2, 0] == pytest.approx(2.0 + 0.5 * 3.0)
    assert traj.is_first[3, 0] and traj.obs[3, 0, 1] == 0  # a brand-new env
    # Env 0's broken episode is not reported; its new one ends at index 6, env 1's at 3 and 7.
    assert [e.episode_length for e in traj.episodes] == [4, 4, 4]
    np.testing.assert_array_equal(np.argwhere(traj.terminated), [[3, 1], [6, 0], [7, 1]])
    assert not traj.truncated[:, 1].any()


def test_too_many_env_errors_raise():
    factory = FlakyEnvFactory(raise_at_step=1)
    worker = RolloutWorker([functools.partial(factory, 0)], CountingAgent(), 3, seed=0, max_env_errors=0)
    with pytest.raises(RuntimeError, match="max_env_errors=0"):
        worker.rollout()


def test_set_weights_changes_version_and_behaviour():
    worker = _worker(functools.partial(make_counting_env))
    before = worker.rollout()
    assert before.policy_version == -1
    worker.set_weights(3, CountingAgent(scale=-1.0).state_dict())
    after = worker.rollout()
    assert after.policy_version == 3
    assert np.all(np.sign(after.behaviour_logits[1:, :, 0]) == -1)


def test_same_seed_same_trajectories_different_seed_different_actions():
    env_fn = functools.partial(make_counting_env)
    a, b, c = (RolloutWorker([env_fn] * 4, CountingAgent(), 10, seed=s).rollout() for s in (1, 1, 2))
    np.testing.assert_array_equal(a.action, b.action)
    assert not np.array_equal(a.action, c.action)


def test_worker_seeds_are_distinct_and_deterministic():
    env_seeds, sampling = worker_seeds(5, 8)
    assert len(set(env_seeds + [sampling])) == 9
    assert worker_seeds(5, 8) == (env_seeds, sampling)
    assert worker_seeds(6, 8)[0] != env_seeds


def test_close_closes_every_env():
    worker = _worker(functools.partial(make_counting_env))
    envs = list(worker._envs)
    worker.close()
    assert all(env.unwrapped.closed for env in envs)
