"""Where the learner runs: in the driver process, or as a Ray actor on a GPU node.

Both endpoints offer the same small interface to the training loop, so ``loop.py`` has one
code path. The remote endpoint receives trajectory *references*: Ray moves the data
straight from the actors' nodes to the learner's node, never through the driver.
This module and ``actors/pool.py`` are the two places that import Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import ray
import torch
from torch import nn

from actors.trajectory import Trajectory
from configs.schema import LearnerConfig
from learner.learner import Learner


class Counters(NamedTuple):
    updates: int
    env_steps: int
    version: int


class UpdateResult(NamedTuple):
    metrics: dict[str, float]
    gates: dict[str, torch.Tensor]  # empty unless asked for


def train_step(learner: Learner, trajectories: Sequence[Trajectory], collect_gates: bool) -> UpdateResult:
    """Batch the trajectories on the learner's device and take one update."""
    batch = learner.make_batch(trajectories)
    if collect_gates:
        metrics, gates = learner.update(batch, collect_gates=True)
        return UpdateResult(metrics, gates)
    return UpdateResult(learner.update(batch), {})


def counters(learner: Learner) -> Counters:
    return Counters(learner.updates, learner.env_steps, learner.version)


class LocalLearner:
    """The learner in this process; takes trajectories that the driver fetched."""

    def __init__(self, agent_factory: Callable[[], nn.Module], learner_config: LearnerConfig, total_updates: int):
        self.learner = Learner(agent_factory(), learner_config, total_updates)

    def update(self, trajectories: Sequence[Trajectory], collect_gates: bool = False) -> UpdateResult:
        return train_step(self.learner, trajectories, collect_gates)

    def get_weights(self) -> tuple[int, dict[str, Any]]:
        return self.learner.get_weights()

    def counters(self) -> Counters:
        return counters(self.learner)

    def save_checkpoint(self, path: str) -> None:
        self.learner.save_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        self.learner.load_checkpoint(path)

    def device(self) -> str:
        return str(self.learner.device)


class _LearnerActor(LocalLearner):
    """The body of the learner's Ray actor: trajectories arrive as resolved positional arguments."""

    def update_from_args(self, collect_gates: bool, *trajectories: Trajectory) -> UpdateResult:
        return self.update(trajectories, collect_gates)


class RemoteLearner:
    """The learner as a Ray actor reserving ``num_gpus``, so a cluster places it on a GPU node.

    Checkpoint paths are paths on the learner's node (the head node's disk when it has the GPU).
    """

    def __init__(self, agent_factory: Callable[[], nn.Module], learner_config: LearnerConfig, total_updates: int):
        actor_class = ray.remote(num_gpus=learner_config.num_gpus, num_cpus=1)(_LearnerActor)
        self._actor = actor_class.remote(agent_factory, learner_config, total_updates)

    def update(self, trajectory_refs: Sequence[ray.ObjectRef], collect_gates: bool = False) -> UpdateResult:
        # Top-level ObjectRef arguments are resolved on the learner's node, not here.
        return ray.get(self._actor.update_from_args.remote(collect_gates, *trajectory_refs))

    def get_weights(self) -> tuple[int, dict[str, Any]]:
        return ray.get(self._actor.get_weights.remote())

    def counters(self) -> Counters:
        return ray.get(self._actor.counters.remote())

    def save_checkpoint(self, path: str) -> None:
        ray.get(self._actor.save_checkpoint.remote(path))

    def load_checkpoint(self, path: str) -> None:
        ray.get(self._actor.load_checkpoint.remote(path))

    def device(self) -> str:
        return ray.get(self._actor.device.remote())
