"""``RayActorPool``: rollout workers as Ray actors. The only module of gatedrl that imports Ray.

Data flow (DESIGN.md): each actor keeps ``rollouts_in_flight`` rollout calls queued, so it
steps its environments while the learner computes. A call returns two objects: a small
``RolloutInfo`` that the driver fetches (policy version, episodes, env errors) and the
``Trajectory`` itself, which stays in Ray's object store until the learner ``ray.get``s
it, so the driver never copies trajectory data unless it is the learner. Each weight
version is put in the object store once; every rollout call carries that reference, boxed
in a list so that Ray does not resolve it, and an actor fetches it only when the version
is newer than its own. Finished rollouts are taken in the order they were requested, so a
fast actor's cannot crowd out another's. Trajectories more than ``max_policy_lag`` versions
old are dropped.
An actor that dies (killed, out of memory, segfault) is replaced with a fresh one, its
in-flight rollouts discarded; an exception raised inside a rollout is re-raised.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import ray
import torch

from actors.arrays import state_dict_from_numpy, state_dict_to_numpy
from actors.local_pool import AgentFactory, EnvFactory, PoolStats, build_worker
from actors.trajectory import EpisodeStats, Trajectory
from configs.schema import ActorsConfig

log = logging.getLogger(__name__)

# Errors meaning "the actor process is gone": replace the actor, keep training.
ACTOR_DEATH_ERRORS = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError)


class RolloutInfo(NamedTuple):
    """What the driver learns about a rollout without fetching its trajectory."""

    actor_id: int
    policy_version: int
    num_steps: int
    episodes: tuple[EpisodeStats, ...]
    env_errors: int  # environments recreated since this actor's previous rollout


class TrajectoryRef(NamedTuple):
    """A trajectory still in Ray's object store, with its metadata."""

    info: RolloutInfo
    ref: ray.ObjectRef  # -> Trajectory


class _RemoteWorker:
    """The body of one Ray actor: a ``RolloutWorker`` that fetches new weights by reference."""

    def __init__(self, env_factory: EnvFactory, agent_factory: AgentFactory, config: ActorsConfig, actor_id: int,
                 discount: float, seed: int, generation: int) -> None:  # fmt: skip
        # One intra-op thread per reserved CPU: T = 1 inference gains nothing from more, and
        # several actors on one machine must not oversubscribe its cores.
        torch.set_num_threads(max(1, int(config.num_cpus_per_actor)))
        self._worker = build_worker(env_factory, agent_factory, config, actor_id, discount, seed, generation)
        self._env_errors_reported = 0

    def rollout(self, version: int, weights: list[ray.ObjectRef]) -> tuple[RolloutInfo, Trajectory]:
        if version != self._worker.policy_version:
            self._worker.set_weights(version, state_dict_from_numpy(ray.get(weights[0])))
        traj = self._worker.rollout()
        env_errors = self._worker.stats().env_errors
        new_errors, self._env_errors_reported = env_errors - self._env_errors_reported, env_errors
        return RolloutInfo(traj.actor_id, traj.policy_version, traj.num_steps, traj.episodes, new_errors), traj

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (for placement checks on a cluster)."""
        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        self._worker.close()


def _first_ready(refs: list[ray.ObjectRef]) -> ray.ObjectRef:
    """The first of ``refs``, in list order, that is done; blocks until one is.

    Not ``ray.wait(refs, num_returns=1)``: when several refs are done it returns one picked
    in the order of Ray's hash set of their IDs, not in list order. After a node loss the
    other actor's newest rollout won every time: the replacement's finished rollouts were
    passed over for minutes and, never asked for more, it idled. ``ray.wait`` keeps the
    input order in its ready list, so asking for every done ref, without waiting, serves
    rollouts in the order they were requested.
    """
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    if not ready:
        ready, _ = ray.wait(refs, num_returns=1)
    return ready[0]


@dataclass(frozen=True)
class _Request:
    actor_id: int
    trajectory: ray.ObjectRef  # -> Trajectory


class RayActorPool:
    """``config.num_actors`` Ray actors, each reserving ``config.num_cpus_per_actor`` CPUs.

    Ray must already be initialised (``ray.init``). Actors start at construction; rollouts
    start with the first ``publish_weights``. ``max_restarts`` bounds the actor replacements
    over the pool's life, so that an actor that can never live fails the run loudly.
    """

    def __init__(self, env_factory: EnvFactory, agent_factory: AgentFactory, config: ActorsConfig, discount: float,
                 seed: int = 0, max_restarts: int = 100) -> None:  # fmt: skip
        if not ray.is_initialized():
            raise RuntimeError("RayActorPool needs a running Ray: call ray.init() first")
        self._actor_args = (env_factory, agent_factory, config, discount, seed)
        self._config = config
        self._max_restarts = max_restarts
        self._remote_class = ray.remote(num_cpus=config.num_cpus_per_actor, max_restarts=0)(_RemoteWorker)
        self._actors: dict[int, Any] = {}
        self._generations: dict[int, int] = {}
        self._pending: dict[ray.ObjectRef, _Request] = {}
        self._version = -1
        self._weights_ref: ray.ObjectRef | None = None
        self._counts = {"trajectories": 0, "env_steps": 0, "dropped_stale": 0, "restarts": 0, "env_errors": 0}
        self._queue_wait_s = 0.0
        self._last_policy_lag = 0.0
        for actor_id in range(config.num_actors):
            self._start_actor(actor_id, generation=0)

    # ------------------------------------------------------------------ public API
    def publish_weights(self, version: int, weights: Mapping[str, Any]) -> None:
        """Put ``weights`` (a state dict) in the object store once; later rollouts use it."""
        first = self._weights_ref is None
        self._weights_ref = ray.put(state_dict_to_numpy(weights))  # numpy: zero-copy in the object store
        self._version = version
        if first:
            for actor_id in self._actors:
                self._request_rollouts(actor_id, self._config.rollouts_in_flight)

    def wait_ready(self) -> None:
        """Block until every actor has been constructed (e.g. before timing throughput)."""
        ray.get([handle.pid.remote() for handle in self._actors.values()])

    def next_refs(self, n: int) -> list[TrajectoryRef]:
        """Block until ``n`` fresh rollouts are done; returns references, fetching no trajectory."""
        if self._weights_ref is None:
            raise RuntimeError("publish_weights() must be called before next_refs() / next_trajectories()")
        start = time.perf_counter()
        batch: list[TrajectoryRef] = []
        while len(batch) < n:
            info_ref = _first_ready(list(self._pending))
            request = self._pending.pop(info_ref)
            try:
                info: RolloutInfo = ray.get(info_ref)
            except ACTOR_DEATH_ERRORS as error:
                self._replace_dead_actor(request.actor_id, error)
                continue
            self._request_rollouts(request.actor_id, 1)
            self._counts["env_errors"] += info.env_errors
            if self._version - info.policy_version > self._config.max_policy_lag:
                self._counts["dropped_stale"] += 1
                continue
            batch.append(TrajectoryRef(info, request.trajectory))
        self._queue_wait_s += time.perf_counter() - start
        self._counts["trajectories"] += n
        self._counts["env_steps"] += sum(item.info.num_steps for item in batch)
        self._last_policy_lag = sum(self._version - item.info.policy_version for item in batch) / max(n, 1)
        return batch

    def next_trajectories(self, n: int) -> list[Trajectory]:
        """``next_refs`` and fetch them: for a learner that runs in this process."""
        refs = self.next_refs(n)
        start = time.perf_counter()
        trajectories = ray.get([item.ref for item in refs])
        self._queue_wait_s += time.perf_counter() - start
        return trajectories

    def stats(self) -> PoolStats:
        return PoolStats(**self._counts, queue_wait_s=self._queue_wait_s, last_policy_lag=self._last_policy_lag)

    def actor(self, actor_id: int) -> Any:
        """The current Ray actor handle of ``actor_id`` (for tools and tests)."""
        return self._actors[actor_id]

    def close(self, timeout_s: float = 10.0) -> None:
        """Close every actor's envs (after its queued rollouts, up to ``timeout_s``), then kill it."""
        self._pending.clear()
        closing = [handle.close.remote() for handle in self._actors.values()]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=timeout_s)
        finally:
            for handle in self._actors.values():
                ray.kill(handle, no_restart=True)
            self._actors.clear()

    def __enter__(self) -> RayActorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ actors
    def _start_actor(self, actor_id: int, generation: int) -> None:
        env_factory, agent_factory, config, discount, seed = self._actor_args
        self._actors[actor_id] = self._remote_class.remote(
            env_factory, agent_factory, config, actor_id, discount, seed, generation
        )
        self._generations[actor_id] = generation

    def _request_rollouts(self, actor_id: int, count: int) -> None:
        handle = self._actors[actor_id]
        for _ in range(count):
            info_ref, trajectory_ref = handle.rollout.options(num_returns=2).remote(self._version, [self._weights_ref])
            self._pending[info_ref] = _Request(actor_id, trajectory_ref)

    def _replace_dead_actor(self, actor_id: int, error: Exception) -> None:
        """Discard the dead actor's in-flight rollouts and start a new one with the latest weights."""
        if isinstance(error, ray.exceptions.RayActorError) and error.actor_init_failed:
            raise RuntimeError(f"actor {actor_id} failed to start: {error}") from error
        if self._counts["restarts"] >= self._max_restarts:
            raise RuntimeError(f"actor {actor_id} died after {self._max_restarts} restarts: {error}") from error
        log.warning("actor %d died (%s); restarting it", actor_id, type(error).__name__)
        self._pending = {ref: r for ref, r in self._pending.items() if r.actor_id != actor_id}
        ray.kill(self._actors[actor_id], no_restart=True)
        self._counts["restarts"] += 1
        self._start_actor(actor_id, self._generations[actor_id] + 1)
        self._request_rollouts(actor_id, self._config.rollouts_in_flight)
