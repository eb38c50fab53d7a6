"""A two-node Ray cluster on one machine: actors spread over both nodes, and the learner as a Ray
actor that receives trajectory references (the placement used when it asks for a GPU)."""

from __future__ import annotations

import functools

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.pool import RayActorPool
from agents import Agent
from configs import load_config
from envs import make_env
from learner.loop import probe_spaces
from learner.remote import RemoteLearner

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = [
    "env.id=gatedrl/PassiveMatch-v0",
    "env.kwargs.delay=2",
    "agent.mlp_sizes=[16]",
    "agent.core.hidden_size=16",
    "agent.core.gate=ur",
    "actors.envs_per_actor=2",
    "actors.unroll_length=5",
    "actors.num_cpus_per_actor=1",
]


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def build(overrides):
    config = load_config(None, [*SMALL, *overrides])
    obs_space, action_space = probe_spaces(config)
    agent_factory = functools.partial(Agent, obs_space, action_space, config.agent)
    env_factory = functools.partial(make_env, config.env)
    return config, agent_factory, env_factory


def test_actors_run_on_both_nodes(two_nodes):
    config, agent_factory, env_factory = build(["actors.num_actors=2"])
    with RayActorPool(env_factory, agent_factory, config.actors, config.learner.discount) as pool:
        pool.publish_weights(0, agent_factory().state_dict())
        trajectories = pool.next_trajectories(4)
        nodes = {ray.get(pool.actor(i).node_id.remote()) for i in range(2)}
    assert len(nodes) == 2
    assert {traj.actor_id for traj in trajectories} <= {0, 1}
    assert all(traj.unroll_length == 5 for traj in trajectories)


def test_remote_learner_trains_on_references(two_nodes):
    config, agent_factory, env_factory = build(["actors.num_actors=1"])
    learner = RemoteLearner(agent_factory, config.learner, total_updates=10)
    with RayActorPool(env_factory, agent_factory, config.actors, config.learner.discount) as pool:
        pool.publish_weights(*learner.get_weights())
        for _ in range(2):
            refs = [item.ref for item in pool.next_refs(2)]
            result = learner.update(refs, collect_gates=True)
            pool.publish_weights(*learner.get_weights())
    counters = learner.counters()
    assert counters.updates == 2 and counters.env_steps == 2 * 2 * 5 * 2
    assert set(result.gates) >= {"f", "r", "g"}
    assert result.metrics["losses/total"] == result.metrics["losses/total"]  # finite, not NaN
