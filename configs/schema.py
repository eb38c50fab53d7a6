"""The configuration schema: frozen, nested dataclasses, one section per part.

Every field carries its allowed values in ``metadata`` so that the loader can
validate a whole config before any work starts (see ``configs/loader.py``).
Each part of the framework receives only its own section, never the whole
``Config``; nothing mutates a config after it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def choice(default: Any, *allowed: Any) -> Any:
    """A field whose value must be one of ``allowed``."""
    return field(default=default, metadata={"choices": allowed})


def bounded(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A numeric field in ``[low, high]`` (an end is excluded when ``low_open`` / ``high_open``); ``None`` ends are
    unbounded. On a tuple field the bounds hold for every element."""
    return field(default=default, metadata={"low": low, "high": high, "low_open": low_open, "high_open": high_open})


def mapping() -> Any:
    """A free-form ``str -> value`` mapping (keyword arguments handed to user code)."""
    return field(default_factory=dict)


@dataclass(frozen=True)
class WrapperConfig:
    """A gymnasium wrapper named by import path, e.g. ``gymnasium.wrappers:FlattenObservation``."""

    path: str = ""
    kwargs: dict[str, Any] = mapping()


@dataclass(frozen=True)
class EnvConfig:
    """Which environment the actors build (``envs.make_env``)."""

    id: str = "CartPole-v1"
    kwargs: dict[str, Any] = mapping()
    wrappers: tuple[WrapperConfig, ...] = ()
    max_episode_steps: int | None = bounded(None, 1)
    # Clip rewards to [-clip_reward, clip_reward] inside the environment; None keeps them.
    clip_reward: float | None = bounded(None, 0.0, low_open=True)
    # Standard Atari preprocessing for ALE/... ids: "auto" applies it to ALE ids only.
    atari_preprocessing: str = choice("auto", "auto", "on", "off")


CELLS = ("lstm", "gru", "none")
GATES = ("standard", "tied", "chrono", "u", "r", "ur", "o", "m", "om", "or", "um")
COMPILE_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class CoreConfig:
    """The memory cell: ``cell`` x ``gate`` as in ``memory_cells.make_cell``.

    ``cell: none`` is the memoryless control (a feed-forward layer of the same width).
    ``options`` holds the gate options (``t_max`` for chrono, ``chunk_size`` for cumax
    gates, the UR choices of PAPER.md); ``memory_cells`` validates them.
    """

    cell: str = choice("lstm", *CELLS)
    gate: str = choice("standard", *GATES)
    hidden_size: int = bounded(256, 1)
    num_layers: int = bounded(1, 1)
    options: dict[str, Any] = mapping()
    # Unroll with torch.compile (memory_cells/compiled.py): "auto" where the core runs on CUDA, where the
    # eager cells are launch-bound; the CPU (the actors, a CPU learner) keeps the eager reference path.
    compile: str = choice("auto", *COMPILE_CHOICES)
    # Where compiled: unroll in chunks of this many steps through one graph of that length (0: one graph of
    # the whole unroll, the fastest updates). A graph's compile time grows with the steps it traces: on an H200
    # the learner's T + 1 = 81 steps at B = 256 compiled in 115 s whole, 43 s in chunks of 27, whose updates
    # were as fast (docs/bench_learner.md); a divisor of T + 1 avoids a short last chunk's extra graph.
    compile_chunk: int = bounded(0, 0)


@dataclass(frozen=True)
class AgentConfig:
    """The actor-critic network around the core (``agents.Agent``)."""

    # "auto" picks an MLP for vectors and the shallow IMPALA conv net for images.
    torso: str = choice("auto", "auto", "mlp", "shallow_conv", "deep_conv")
    mlp_sizes: tuple[int, ...] = (64, 64)
    core: CoreConfig = field(default_factory=CoreConfig)
    # Hidden ReLU layers between the core and each head (policy and baseline have their own); () as IMPALA.
    head_sizes: tuple[int, ...] = ()
    # The previous action (one-hot) and reward (clipped to [-1, 1]) as core inputs beside the torso's
    # features, as IMPALA and R2D2 feed them; false: the observation alone, as RLlib's and Sample Factory's
    # recurrent models do by default (docs/agents.md).
    prev_action_reward: bool = True
    # LayerNorm after each Linear of the MLP torso, before its ReLU (Ba et al. 2016): the core sees
    # features of a fixed scale however far a batch moves the torso's weights (docs/agents.md).
    layer_norm: bool = False
    # "shared": one torso and core feed both heads, as IMPALA's agent. "separate": the baseline reads its own
    # torso and core (same sizes, cell and gate), so the value regression never moves the policy's features,
    # as stable-baselines3's RecurrentPPO and most MLP actor-critics do by default (docs/agents.md).
    critic: str = choice("shared", "shared", "separate")


@dataclass(frozen=True)
class ActorsConfig:
    """The rollout workers and the pool that runs them (``actors/``)."""

    num_actors: int = bounded(2, 1)
    envs_per_actor: int = bounded(8, 1)
    unroll_length: int = bounded(20, 1)
    # K earlier steps that each trajectory carries and the learner replays with gradient before its
    # unroll, so that credit crosses the boundary between unrolls (docs/context_window.md); 0: none.
    context_length: int = bounded(0, 0)
    # Rollouts requested ahead per actor so that stepping never waits on the learner.
    rollouts_in_flight: int = bounded(2, 1)
    # Trajectories generated by a policy more than this many versions old are dropped.
    max_policy_lag: int = bounded(50, 0)
    num_cpus_per_actor: float = bounded(1.0, 0.0)
    # "ray" runs workers as Ray actors; "local" steps them in-process (debugging, tests).
    backend: str = choice("ray", "ray", "local")
    max_env_errors: int = bounded(100, 0)


@dataclass(frozen=True)
class VTraceConfig:
    """Truncation levels of V-trace (Espeholt et al. 2018); ``None`` disables a clip."""

    clip_rho_threshold: float | None = bounded(1.0, 0.0, low_open=True)
    clip_pg_rho_threshold: float | None = bounded(1.0, 0.0, low_open=True)
    clip_c_threshold: float | None = bounded(1.0, 0.0, low_open=True)
    lambda_: float = bounded(1.0, 0.0, 1.0)


@dataclass(frozen=True)
class PopArtConfig:
    """How fast PopArt's value statistics follow the targets (``learner/popart.py``)."""

    # Exponential-average step per update (after an exact average over the first 1/step_size updates).
    step_size: float = bounded(1e-2, 0.0, 1.0, low_open=True)
    # Floor of the normalising std, so that a task whose returns are all 0 so far does not divide by ~0.
    min_std: float = bounded(1e-2, 0.0, low_open=True)


@dataclass(frozen=True)
class LearnerConfig:
    """The optimisation step (``learner.Learner``). Losses are *summed* over T and B."""

    batch_size: int = bounded(8, 1)
    device: str = choice("auto", "auto", "cpu", "cuda")
    # Intra-op threads of a CPU learner; 0 = the cores left over by the local actors (at least 1).
    # More threads than free cores slow every update several-fold (measured: 10 ms -> 290 ms).
    cpu_threads: int = bounded(0, 0)
    # GPUs requested for the learner on a Ray cluster; > 0 runs it as a Ray actor.
    num_gpus: float = bounded(0.0, 0.0)
    optimizer: str = choice("rmsprop", "rmsprop", "adam")
    learning_rate: float = bounded(6e-4, 0.0, low_open=True)
    lr_schedule: str = choice("linear", "linear", "constant")
    rmsprop_alpha: float = bounded(0.99, 0.0, 1.0)
    rmsprop_momentum: float = bounded(0.0, 0.0, 1.0)
    rmsprop_eps: float = bounded(0.01, 0.0, low_open=True)
    # "pytorch" adds eps outside the square root, "tensorflow" inside (IMPALA's TF code).
    rmsprop_eps_convention: str = choice("pytorch", "pytorch", "tensorflow")
    adam_betas: tuple[float, float] = bounded((0.9, 0.999), 0.0, 1.0, high_open=True)
    adam_eps: float = bounded(1e-8, 0.0, low_open=True)
    discount: float = bounded(0.99, 0.0, 1.0)
    baseline_cost: float = bounded(0.5, 0.0)
    entropy_cost: float = bounded(0.01, 0.0)
    grad_norm_clip: float | None = bounded(40.0, 0.0, low_open=True)
    # Optimiser steps per batch (APPO when > 1: later passes reuse the first pass's V-trace targets).
    epochs_per_batch: int = bounded(1, 1)
    # PPO's ratio clip against the policy of a batch's first pass; None: IMPALA's policy gradient.
    ppo_clip: float | None = bounded(None, 0.0, low_open=True)
    reward_clip: float | None = bounded(None, 0.0, low_open=True)
    # "popart" learns the baseline in normalised units and scales advantages by 1/std (Hessel et al. 2019),
    # so that one set of hyper-parameters serves returns of any scale; "none" regresses raw returns.
    value_norm: str = choice("popart", "popart", "none")
    popart: PopArtConfig = field(default_factory=PopArtConfig)
    vtrace: VTraceConfig = field(default_factory=VTraceConfig)


@dataclass(frozen=True)
class RunConfig:
    """The run as a whole: length, seed, where logs go, how often things happen."""

    name: str | None = None
    seed: int = bounded(0, 0)
    total_env_steps: int = bounded(500_000, 1)
    log_dir: str = "runs"
    console_interval_s: float = bounded(10.0, 0.0, low_open=True)
    checkpoint_interval_min: float = bounded(10.0, 0.0, low_open=True)
    # Gate histograms are computed from the learner's batch every N updates.
    gate_stats_every_updates: int = bounded(50, 1)
    # Ray: None starts a local instance; "auto" or "ray://host:port" joins a cluster.
    address: str | None = None


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    actors: ActorsConfig = field(default_factory=ActorsConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    run: RunConfig = field(default_factory=RunConfig)
