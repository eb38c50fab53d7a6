"""Actor pools: the in-process pool, and the Ray pool on a real local Ray (one ray.init for the module)."""

from __future__ import annotations

import functools
import os
import signal
from dataclasses import replace

import numpy as np
import pytest
import ray

from actors.local_pool import LocalActorPool, PoolStats
from actors.pool import RayActorPool, TrajectoryRef
from actors.trajectory import Trajectory
from configs.schema import ActorsConfig
from tests.counting import CountingAgent, FlakyEnvFactory, make_counting_env

# 0.25 CPU per actor: the four pools of this module fit on the 2 CPUs given to Ray at once.
CONFIG = ActorsConfig(num_actors=2, envs_per_actor=2, unroll_length=5, rollouts_in_flight=2, num_cpus_per_actor=0.25)
ENV_FACTORY = functools.partial(make_counting_env, episode_length=4)


def _weights(scale: float) -> dict:
    return CountingAgent(scale).state_dict()


def _broken_env_factory(seed: int):
    raise ValueError("no such environment")


# ---------------------------------------------------------------------- in-process pool
def test_local_pool_round_robin_with_latest_weights():
    with LocalActorPool(ENV_FACTORY, CountingAgent, CONFIG, discount=0.9, seed=1) as pool:
        with pytest.raises(RuntimeError, match="publish_weights"):
            pool.next_trajectories(1)
        pool.publish_weights(0, _weights(1.0))
        first = pool.next_trajectories(3)
        pool.publish_weights(1, _weights(-1.0))
        second = pool.next_trajectories(2)
        stats = pool.stats()
    assert [t.actor_id for t in first + second] == [0, 1, 0, 1, 0]
    assert [t.policy_version for t in first + second] == [0, 0, 0, 1, 1]
    assert np.all(second[0].behaviour_logits[1:, :, 0] < 0)
    assert stats.trajectories == 5 and stats.env_steps == 5 * 5 * 2
    assert stats.dropped_stale == stats.restarts == stats.env_errors == 0


def test_local_pool_counts_env_errors():
    with LocalActorPool(FlakyEnvFactory(raise_at_step=2), CountingAgent, CONFIG, discount=0.9) as pool:
        pool.publish_weights(0, _weights(1.0))
        pool.next_trajectories(2)
        # Each worker got its own copy of nothing: the factory object is shared in-process,
        # so only the very first env built anywhere raises.
        assert pool.stats().env_errors == 1


def test_published_weights_are_a_copy():
    weights = _weights(1.0)
    with LocalActorPool(ENV_FACTORY, CountingAgent, CONFIG, discount=0.9) as pool:
        pool.publish_weights(0, weights)
        weights["scale"].fill_(-5.0)  # the learner keeps training after publishing
        traj = pool.next_trajectories(1)[0]
    assert np.all(traj.behaviour_logits[:, :, 0] > 0)


# ---------------------------------------------------------------------- Ray pool
# Starting an actor means importing torch in a new process (~10 s on a loaded 2-core
# machine), so the tests share two pools, each used by consecutive tests in file order.
@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never join a running Ray
    yield
    ray.shutdown()


def _ray_pool(config: ActorsConfig = CONFIG, env_factory=ENV_FACTORY) -> RayActorPool:
    return RayActorPool(env_factory, CountingAgent, config, discount=0.9, seed=0, max_restarts=5)


@pytest.fixture(scope="module")
def counting_pool(local_ray):
    with _ray_pool() as pool:
        pool.wait_ready()  # one actor must not outpace the other while it still imports torch
        yield pool


@pytest.fixture(scope="module")
def flaky_pool(local_ray):
    # Each actor unpickles its own factory, so the first env built in each actor raises once.
    with _ray_pool(replace(CONFIG, max_policy_lag=0), env_factory=FlakyEnvFactory(raise_at_step=3)) as pool:
        pool.wait_ready()
        yield pool


@pytest.mark.ray
def test_ray_trajectories_flow_by_reference_and_carry_versions(counting_pool):
    pool = counting_pool
    pool.publish_weights(0, _weights(1.0))
    refs = pool.next_refs(2)
    assert all(isinstance(item, TrajectoryRef) and isinstance(item.ref, ray.ObjectRef) for item in refs)
    fetched = ray.get([item.ref for item in refs])
    assert [t.policy_version for t in fetched] == [item.info.policy_version for item in refs]
    pool.publish_weights(1, _weights(-1.0))
    seen: list[Trajectory] = []
    while {t.actor_id for t in seen if t.policy_version == 1} != {0, 1}:
        seen += pool.next_trajectories(2)
        assert len(seen) < 60
    assert all(np.all(t.behaviour_logits[1:, :, 0] < 0) for t in seen if t.policy_version == 1)
    stats = pool.stats()
    assert isinstance(stats, PoolStats) and stats.trajectories == 2 + len(seen)
    assert stats.restarts == stats.dropped_stale == stats.env_errors == 0


@pytest.mark.ray
def test_ray_dead_actors_are_replaced_and_counted(counting_pool):
    pool = counting_pool

    def collect_until_restarts(restarts: int) -> list[Trajectory]:
        # Rollouts that finished before the death still arrive; the next request fails.
        batch: list[Trajectory] = []
        while pool.stats().restarts < restarts:
            batch += pool.next_trajectories(1)
            assert len(batch) < 1000
        pool.wait_ready()  # the replacement imports torch while the other actor keeps going
        new_batch: list[Trajectory] = []
        while {t.actor_id for t in new_batch} != {0, 1}:  # then the replacement delivers too
            new_batch += pool.next_trajectories(1)
            assert len(new_batch) < 100
        return batch + new_batch

    first = pool.actor(0)
    ray.kill(first)
    batch = collect_until_restarts(1)
    assert pool.actor(0) != first
    os.kill(ray.get(pool.actor(1).pid.remote()), signal.SIGKILL)  # like an env segfault or an OOM kill
    batch += collect_until_restarts(2)
    assert pool.stats().restarts == 2
    assert all(isinstance(t, Trajectory) and t.policy_version == 1 for t in batch)


@pytest.mark.ray
def test_ray_stale_trajectories_are_dropped_and_counted(flaky_pool):
    pool = flaky_pool
    pool.publish_weights(0, _weights(1.0))  # requests 2 rollouts per actor, all with version 0
    pool.publish_weights(1, _weights(1.0))
    seen: list[Trajectory] = []
    while {t.actor_id for t in seen} != {0, 1}:
        seen += pool.next_trajectories(1)
        assert len(seen) < 60
    # Each actor runs its requests in order: both of its version-0 rollouts came (and went) first.
    assert all(t.policy_version == 1 for t in seen)
    assert pool.stats().dropped_stale == CONFIG.num_actors * CONFIG.rollouts_in_flight
    assert pool.stats().last_policy_lag == 0.0


@pytest.mark.ray
def test_ray_env_that_raises_is_recreated_and_counted(flaky_pool):
    pool = flaky_pool
    batch: list[Trajectory] = []
    while pool.stats().env_errors < CONFIG.num_actors:
        batch += pool.next_trajectories(2)
        assert len(batch) < 60
    batch += pool.next_trajectories(4)
    # Counted even when the rollout that saw the error was dropped as stale (as in the test above).
    assert pool.stats().env_errors == CONFIG.num_actors and pool.stats().restarts == 0


@pytest.mark.ray
def test_ray_errors_inside_a_rollout_or_actor_start_fail_loudly(local_ray):
    one_actor = replace(CONFIG, num_actors=1)
    failing_rollouts = _ray_pool(replace(one_actor, max_env_errors=0), env_factory=FlakyEnvFactory(raise_at_step=1))
    failing_start = _ray_pool(one_actor, env_factory=_broken_env_factory)
    with failing_rollouts, failing_start:  # both start their actors at once
        failing_rollouts.publish_weights(0, _weights(1.0))
        with pytest.raises(RuntimeError, match="max_env_errors=0"):
            failing_rollouts.next_trajectories(1)
        failing_start.publish_weights(0, _weights(1.0))
        with pytest.raises(RuntimeError, match="failed to start"):
            failing_start.next_trajectories(1)
