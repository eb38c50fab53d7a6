"""Rollout workers (plain Python) and the pools that run them; ``Trajectory`` is what they produce.

``actors.pool.RayActorPool`` is deliberately not imported here: it is the only module that
imports Ray, and only a run that uses Ray should pay for it.
"""

from actors.local_pool import ActorPool, LocalActorPool, PoolStats, build_worker
from actors.trajectory import Context, EpisodeStats, Trajectory
from actors.worker import RolloutWorker, WorkerStats

__all__ = [
    "ActorPool",
    "Context",
    "EpisodeStats",
    "LocalActorPool",
    "PoolStats",
    "RolloutWorker",
    "Trajectory",
    "WorkerStats",
    "build_worker",
]
