"""The training loop: keep rollouts in flight, update, publish weights, log, checkpoint, stop.

    trajectories = pool.next(batch_size)          # actors never wait: rollouts are queued ahead
    metrics = learner.update(trajectories)        # one synchronous V-trace step
    pool.publish_weights(learner.get_weights())   # one ray.put per version
    log / print / checkpoint on their own clocks

``train`` is the one place that sees the whole config: it builds each part from its own
section and hands the parts to each other (DESIGN.md, "Contracts between folders").
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from actors.local_pool import LocalActorPool
from actors.trajectory import EpisodeStats
from agents import Agent
from configs.loader import to_yaml
from configs.schema import Config
from envs import make_env
from learner import metrics as m
from learner.console import progress_line
from learner.gate_stats import gate_summaries
from learner.plots import plot_run
from learner.remote import LearnerLost, LocalLearner, RemoteLearner
from learner.run_dir import (
    checkpoint_path,
    latest_checkpoint,
    prune_checkpoints,
    read_summary,
    write_checkpoint,
    write_summary,
)
from learner.signals import StopOnSignal
from learner.tensorboard import TensorBoardLogger

log = logging.getLogger(__name__)

CHECKPOINTS_KEPT = 3
RATE_WINDOW = 20  # updates over which perf/env_steps_per_s is measured


def updates_for(config: Config) -> int:
    """Updates in the whole run: the linear learning-rate schedule reaches zero there."""
    a = config.actors
    steps_per_update = config.learner.batch_size * a.unroll_length * a.envs_per_actor
    return max(1, -(-config.run.total_env_steps // steps_per_update))


def learner_threads(config: Config) -> int:
    """Threads for a learner in this process: ``learner.cpu_threads``, or the cores that local Ray
    actors leave free (the in-process backend steps its actors between updates, so all cores)."""
    if config.learner.cpu_threads:
        return config.learner.cpu_threads
    actors_here = config.actors.backend == "ray" and config.run.address is None
    busy = config.actors.num_actors * config.actors.num_cpus_per_actor if actors_here else 0
    return max(1, int((os.cpu_count() or 1) - busy))


def probe_spaces(config: Config) -> tuple[gym.Space, gym.Space]:
    env = make_env(config.env, seed=config.run.seed)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


@dataclass
class Progress:
    """What the loop tracks between updates (the learner keeps the authoritative counters)."""

    env_steps: int
    updates: int
    start_time: float = field(default_factory=time.perf_counter)
    start_steps: int = 0
    returns: deque = field(default_factory=lambda: deque(maxlen=m.RETURN_WINDOW))
    episodes: int = 0
    last_print: tuple[float, int] = (0.0, 0)  # (time, env_steps) at the last console line
    last_checkpoint: float = field(default_factory=time.perf_counter)
    last_metrics: dict[str, float] = field(default_factory=dict)
    recent: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))  # (time, env_steps)

    def add_episodes(self, episodes: list[EpisodeStats]) -> None:
        self.returns.extend(e.episode_return for e in episodes)
        self.episodes += len(episodes)

    def mean_return(self) -> float | None:
        return sum(self.returns) / len(self.returns) if self.returns else None

    def recent_steps_per_s(self) -> float:
        """Throughput over the last ``RATE_WINDOW`` updates: what the system does now, not since start-up."""
        now = time.perf_counter()
        self.recent.append((now, self.env_steps))
        (then, steps_then) = self.recent[0]
        return (self.env_steps - steps_then) / (now - then) if now > then else self.steps_per_s()

    def steps_per_s(self) -> float:
        elapsed = time.perf_counter() - self.start_time
        return (self.env_steps - self.start_steps) / elapsed if elapsed > 0 else 0.0


def make_pool(config: Config, agent_factory: Any) -> Any:
    env_factory = functools.partial(make_env, config.env)
    args = (env_factory, agent_factory, config.actors, config.learner.discount, config.run.seed)
    if config.actors.backend == "local":
        return LocalActorPool(*args)
    from actors.pool import RayActorPool  # imports Ray; only when the run uses it

    return RayActorPool(*args)


def make_learner(config: Config, agent_factory: Any) -> LocalLearner | RemoteLearner:
    if config.learner.num_gpus > 0 and config.actors.backend == "ray":
        return RemoteLearner(agent_factory, config.learner, updates_for(config))
    return LocalLearner(agent_factory, config.learner, updates_for(config))


def next_batch(pool: Any, n: int, remote_learner: bool) -> tuple[list[Any], list[EpisodeStats]]:
    """``n`` trajectories for the learner (references when it is a Ray actor) and their episodes."""
    if remote_learner:
        items = pool.next_refs(n)
        return [item.ref for item in items], [e for item in items for e in item.info.episodes]
    trajectories = pool.next_trajectories(n)
    return trajectories, [e for traj in trajectories for e in traj.episodes]


def train(config: Config, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train until ``run.total_env_steps`` or a stop signal; return the summary written to the run folder.

    This process owns ``run_dir`` (made absolute here, against this process's working directory):
    it writes the events, checkpoints and summary, wherever the learner and the actors run.
    If the learner's Ray actor dies, ``LearnerLost`` is raised; the newest checkpoint is the one
    the run resumes from, and its summary (marked ``stopped_early``) stays the run's.
    """
    run_dir = Path(run_dir).resolve()
    obs_space, action_space = probe_spaces(config)
    agent_factory = functools.partial(Agent, obs_space, action_space, config.agent)
    learner = make_learner(config, agent_factory)
    if isinstance(learner, LocalLearner):
        torch.set_num_threads(learner_threads(config))
    if resume:
        restore(learner, run_dir)
    counters = learner.counters()
    logger = TensorBoardLogger(run_dir, purge_step=counters.env_steps if resume else None)
    if not resume:
        logger.text("config", "```\n" + to_yaml(config) + "```")
    pool = make_pool(config, agent_factory)
    pool.wait_ready()  # actor start-up (seconds: each imports torch) is not training time
    progress = Progress(env_steps=counters.env_steps, updates=counters.updates, start_steps=counters.env_steps,
                        episodes=episodes_before(run_dir) if resume else 0)  # fmt: skip
    log.info("learner on %s; %d actors x %d envs; run folder %s", learner.device(), config.actors.num_actors,
             config.actors.envs_per_actor, run_dir)  # fmt: skip
    try:
        with StopOnSignal() as stop:
            pool.publish_weights(*learner.get_weights())
            while progress.env_steps < config.run.total_env_steps and not stop.requested:
                train_once(config, pool, learner, logger, progress)
                maybe_checkpoint(config, learner, run_dir, progress, pool)
        final = save_checkpoint(learner, run_dir, progress, pool, stopped=stop.requested)
    except LearnerLost:
        # Nothing left to save. The summary stays the newest checkpoint's: figures past it would
        # describe training that a resume replays (and TensorBoard's purge_step hides).
        mark_stopped_early(run_dir)
        log.error("the learner was lost at %d env steps; newest checkpoint: %s", progress.env_steps,
                  latest_checkpoint(run_dir))  # fmt: skip
        raise
    except BaseException:
        # Whatever broke, the learner's state so far is not lost.
        log.exception("training stopped by an error; saving the learner's state")
        save_checkpoint(learner, run_dir, progress, pool, stopped=True)
        raise
    finally:
        pool.close()
        logger.close()
    draw_curves(run_dir)
    return final


def draw_curves(run_dir: Path) -> None:
    """``curves.png`` in the run folder; a plotting problem never fails a finished run."""
    try:
        plot_run(run_dir)
    except Exception:  # noqa: BLE001 - the figure is a convenience, the run's results are saved
        log.warning("could not draw %s/curves.png", run_dir, exc_info=True)


def restore(learner: LocalLearner | RemoteLearner, run_dir: Path) -> None:
    path = latest_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"--resume {run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    learner.load_checkpoint_bytes(path.read_bytes())
    log.info("resumed from %s", path)


def mark_stopped_early(run_dir: Path) -> None:
    try:
        figures = read_summary(run_dir)
    except (FileNotFoundError, ValueError):
        return  # no checkpoint yet, so no summary either
    write_summary(run_dir, {**figures, "stopped_early": True})


def episodes_before(run_dir: Path) -> int:
    """Episodes the run had finished before this resume, so that the summary's count stays the run's total."""
    try:
        return int(read_summary(run_dir).get("episodes") or 0)
    except (FileNotFoundError, ValueError, AttributeError):
        return 0


def train_once(config: Config, pool: Any, learner: Any, logger: Any, progress: Progress) -> None:
    """One update: fetch a batch, step the learner, publish the weights, log."""
    remote = isinstance(learner, RemoteLearner)
    trajectories, episodes = next_batch(pool, config.learner.batch_size, remote)
    collect_gates = (progress.updates + 1) % config.run.gate_stats_every_updates == 0
    result = learner.update(trajectories, collect_gates)
    pool.publish_weights(*learner.get_weights())
    counters = learner.counters()
    progress.env_steps, progress.updates = counters.env_steps, counters.updates
    progress.add_episodes(episodes)
    progress.last_metrics = result.metrics
    log_update(logger, progress, result, episodes, pool)
    maybe_print(config, progress)


def log_update(logger: Any, progress: Progress, result: Any, episodes: list[EpisodeStats], pool: Any) -> None:
    step = progress.env_steps
    stats = pool.stats()
    scalars = dict(result.metrics)
    scalars[m.PERF_ENV_STEPS_PER_S] = progress.recent_steps_per_s()
    scalars[m.PERF_QUEUE_WAIT_MS] = 1000 * stats.queue_wait_s / max(progress.updates, 1)
    scalars[m.ACTORS_POLICY_LAG] = stats.last_policy_lag
    scalars["actors/restarts"] = stats.restarts
    scalars["actors/dropped_stale"] = stats.dropped_stale
    scalars["actors/env_errors"] = stats.env_errors
    if episodes:
        scalars[m.EPISODE_RETURN] = sum(e.episode_return for e in episodes) / len(episodes)
        scalars[m.EPISODE_LENGTH] = sum(e.episode_length for e in episodes) / len(episodes)
        scalars[m.EPISODES_ENDED] = len(episodes)
        if len(progress.returns) == m.RETURN_WINDOW:
            scalars[m.EPISODE_RETURN_MEAN100] = progress.mean_return()
    logger.scalars(scalars, step)
    if result.gates:
        gate_scalars, histograms = gate_summaries(result.gates)
        logger.scalars(gate_scalars, step)
        logger.histograms(histograms, step)


def maybe_print(config: Config, progress: Progress) -> None:
    now = time.perf_counter()
    last_time, last_steps = progress.last_print
    if now - last_time < config.run.console_interval_s and progress.env_steps < config.run.total_env_steps:
        return
    rate = (progress.env_steps - last_steps) / (now - last_time) if last_time else progress.steps_per_s()
    progress.last_print = (now, progress.env_steps)
    line = progress_line(
        progress.env_steps, config.run.total_env_steps, rate, progress.mean_return(), progress.episodes,
        progress.updates,
    )  # fmt: skip
    print(line, flush=True)


def maybe_checkpoint(config: Config, learner: Any, run_dir: Path, progress: Progress, pool: Any) -> None:
    if time.perf_counter() - progress.last_checkpoint >= 60 * config.run.checkpoint_interval_min:
        save_checkpoint(learner, run_dir, progress, pool, stopped=False)


def save_checkpoint(learner: Any, run_dir: Path, progress: Progress, pool: Any, stopped: bool) -> dict[str, Any]:
    # The learner may be on another node: its state comes here as bytes, and this process writes it.
    write_checkpoint(checkpoint_path(run_dir, progress.env_steps), learner.checkpoint_bytes())
    prune_checkpoints(run_dir, CHECKPOINTS_KEPT)
    figures = summary(progress, pool, stopped)
    write_summary(run_dir, figures)
    progress.last_checkpoint = time.perf_counter()
    return figures


def summary(progress: Progress, pool: Any, stopped: bool) -> dict[str, Any]:
    """The run's figures; the counters are the learner's as of its last update (copied into ``progress``)."""
    stats = pool.stats()
    return {
        "env_steps": progress.env_steps,
        "updates": progress.updates,
        "episodes": progress.episodes,
        "mean_return": progress.mean_return(),
        "return_window": len(progress.returns),
        "env_steps_per_s": progress.steps_per_s(),
        "wall_time_s": time.perf_counter() - progress.start_time,
        "actor_restarts": stats.restarts,
        "dropped_stale": stats.dropped_stale,
        "env_errors": stats.env_errors,
        "stopped_early": stopped,
        "last_metrics": progress.last_metrics,
    }
