"""The in-process actor pool (tests, debugging) and the pieces it shares with ``RayActorPool``.

Both pools have the same interface::

    pool.publish_weights(version, state_dict)   # rollouts start after the first call
    pool.wait_ready()                           # blocks until every actor is constructed
    pool.next_trajectories(n) -> list[Trajectory]  # blocks; only trajectories within max_policy_lag
    pool.stats() -> PoolStats
    pool.close()                                # also as a context manager

Here the workers run one after another in the calling process, each rollout with the
latest weights, so the policy lag is always zero and nothing is ever dropped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actors.trajectory import Trajectory
from actors.worker import RolloutWorker, worker_seeds
from configs.schema import ActorsConfig

# ``env_factory(seed) -> env``, e.g. ``functools.partial(envs.make_env, env_config)``; picklable for Ray.
EnvFactory = Callable[[int], gym.Env]
# ``agent_factory() -> agent`` on the CPU, e.g. a partial of ``agents.Agent``; picklable for Ray.
AgentFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class PoolStats:
    """Counters since the pool started; ``last_policy_lag`` describes the last batch handed out."""

    trajectories: int  # handed to the consumer
    env_steps: int  # new environment steps in those trajectories
    dropped_stale: int  # trajectories older than max_policy_lag versions, discarded
    restarts: int  # dead actors replaced
    env_errors: int  # environments that raised and were recreated
    queue_wait_s: float  # total time next_trajectories spent waiting for rollouts
    last_policy_lag: float  # mean (published version - trajectory version) of the last batch


class ActorPool(Protocol):
    """The interface both pools implement (``LocalActorPool`` here, ``RayActorPool`` in ``pool.py``)."""

    def publish_weights(self, version: int, weights: Mapping[str, Any]) -> None: ...

    def wait_ready(self) -> None: ...

    def next_trajectories(self, n: int) -> list[Trajectory]: ...

    def stats(self) -> PoolStats: ...

    def close(self) -> None: ...


def worker_seed(seed: int, actor_id: int, generation: int) -> int:
    """The seed of one worker; ``generation`` counts restarts so a new actor plays new episodes."""
    return int(np.random.SeedSequence([seed, actor_id, generation]).generate_state(1)[0])


def build_worker(
    env_factory: EnvFactory,
    agent_factory: AgentFactory,
    config: ActorsConfig,
    actor_id: int,
    discount: float,
    seed: int,
    generation: int = 0,
) -> RolloutWorker:
    """A ``RolloutWorker`` with ``config.envs_per_actor`` envs, each built with its own seed."""
    own_seed = worker_seed(seed, actor_id, generation)
    env_seeds, _ = worker_seeds(own_seed, config.envs_per_actor)
    env_fns = [functools.partial(env_factory, env_seed) for env_seed in env_seeds]
    return RolloutWorker(
        env_fns,
        agent_factory(),
        config.unroll_length,
        actor_id=actor_id,
        discount=discount,
        seed=own_seed,
        max_env_errors=config.max_env_errors,
        context_length=config.context_length,
    )


def cpu_weights(weights: Mapping[str, Any]) -> dict[str, Any]:
    """A CPU copy of a state dict, detached from the learner's parameters (which keep changing)."""
    return {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v for k, v in weights.items()}


class LocalActorPool:
    """``config.num_actors`` workers stepped in this process, round robin."""

    def __init__(
        self,
        env_factory: EnvFactory,
        agent_factory: AgentFactory,
        config: ActorsConfig,
        discount: float,
        seed: int = 0,
    ) -> None:
        self._workers = [
            build_worker(env_factory, agent_factory, config, i, discount, seed) for i in range(config.num_actors)
        ]
        self._version = -1
        self._weights: dict[str, Any] | None = None
        self._next_worker = 0
        self._trajectories = self._env_steps = 0
        self._queue_wait_s = 0.0

    def publish_weights(self, version: int, weights: Mapping[str, Any]) -> None:
        """Make ``weights`` (a state dict) the policy of every following rollout."""
        self._version, self._weights = version, cpu_weights(weights)

    def wait_ready(self) -> None:
        """Nothing to wait for: the workers were built in the constructor."""

    def next_trajectories(self, n: int) -> list[Trajectory]:
        """Run ``n`` rollouts (round robin over the workers) with the latest weights."""
        if self._weights is None:
            raise RuntimeError("publish_weights() must be called before next_trajectories()")
        start = time.perf_counter()
        batch = []
        for _ in range(n):
            worker = self._workers[self._next_worker]
            self._next_worker = (self._next_worker + 1) % len(self._workers)
            if worker.policy_version != self._version:
                worker.set_weights(self._version, self._weights)
            batch.append(worker.rollout())
        self._queue_wait_s += time.perf_counter() - start
        self._trajectories += n
        self._env_steps += sum(traj.num_steps for traj in batch)
        return batch

    def stats(self) -> PoolStats:
        return PoolStats(
            trajectories=self._trajectories,
            env_steps=self._env_steps,
            dropped_stale=0,
            restarts=0,
            env_errors=sum(worker.stats().env_errors for worker in self._workers),
            queue_wait_s=self._queue_wait_s,
            last_policy_lag=0.0,
        )

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> LocalActorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
