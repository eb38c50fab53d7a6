"""Where the learner runs: in the driver process, or as a Ray actor on a GPU node.

Both endpoints offer the same small interface to the training loop, so ``loop.py`` has one
code path. The remote endpoint receives trajectory *references*: Ray moves the data
straight from the actors' nodes to the learner's node, never through the driver.
Checkpoints travel the other way as bytes: the learner serialises its state wherever it runs,
and the driver, which owns the run folder, writes them (``learner.run_dir.write_checkpoint``).
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


class LearnerLost(RuntimeError):
    """The learner's Ray actor died (its node was lost, or it was killed): its state since the
    newest checkpoint is gone, and the run stops so that it can be resumed from that checkpoint."""


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

    def checkpoint_bytes(self) -> bytes:
        return self.learner.state_bytes()

    def load_checkpoint_bytes(self, data: bytes) -> None:
        self.learner.load_state_bytes(data)

    def device(self) -> str:
        return str(self.learner.device)


class _LearnerActor(LocalLearner):
    """The body of the learner's Ray actor: trajectories arrive as resolved positional arguments."""

    def update_from_args(self, collect_gates: bool, *trajectories: Trajectory) -> UpdateResult:
        return self.update(trajectories, collect_gates)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


class RemoteLearner:
    """The learner as a Ray actor reserving ``num_gpus``, so a cluster places it on a GPU node.

    It never touches a file: checkpoints leave it and reach it as bytes, so the run folder can be
    on the driver's disk while the learner runs on another machine. If the actor dies, every call
    raises ``LearnerLost``; it is not restarted (its state since the newest checkpoint is gone,
    and a GPU to restart it on may not exist), the run stops and is resumed from that checkpoint.
    """

    def __init__(self, agent_factory: Callable[[], nn.Module], learner_config: LearnerConfig, total_updates: int):
        actor_class = ray.remote(num_gpus=learner_config.num_gpus, num_cpus=1, max_restarts=0)(_LearnerActor)
        self._actor = actor_class.remote(agent_factory, learner_config, total_updates)

    def _get(self, ref: ray.ObjectRef) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise LearnerLost(f"the learner's Ray actor died ({type(error).__name__})") from error

    def update(self, trajectory_refs: Sequence[ray.ObjectRef], collect_gates: bool = False) -> UpdateResult:
        # Top-level ObjectRef arguments are resolved on the learner's node, not here.
        return self._get(self._actor.update_from_args.remote(collect_gates, *trajectory_refs))

    def get_weights(self) -> tuple[int, dict[str, Any]]:
        return self._get(self._actor.get_weights.remote())

    def counters(self) -> Counters:
        return self._get(self._actor.counters.remote())

    def checkpoint_bytes(self) -> bytes:
        return self._get(self._actor.checkpoint_bytes.remote())

    def load_checkpoint_bytes(self, data: bytes) -> None:
        self._get(self._actor.load_checkpoint_bytes.remote(data))

    def device(self) -> str:
        return self._get(self._actor.device.remote())

    def node_id(self) -> str:
        """The Ray node the learner runs on (for placement checks on a cluster)."""
        return self._get(self._actor.node_id.remote())
