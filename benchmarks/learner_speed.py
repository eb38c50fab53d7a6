"""Learner throughput: updates/s and samples/s (T x B per second) of ``Learner.update``.

Synthetic batches (random observations, actions and behaviour logits) through the real
``agents.Agent`` with a 256-unit core, for (T=20, B=32) and (T=80, B=256), the classic
LSTM (``lstm/standard``) and the UR-LSTM (``lstm/ur``), on CPU and on CUDA when present.
Each figure is the median of ``--repeats`` timed repeats of ``--updates`` updates, after
warm-up updates; batch assembly (``make_batch``) is timed separately. ``--contexts`` adds
a context of K earlier steps to every trajectory (``actors.context_length``), which the
learner replays before the T + 1 steps (docs/context_window.md). ``--compile`` times the learner with
each ``agent.core.compile`` choice (``auto`` compiles on CUDA only); the seconds that the first update
spent compiling the core's unroll are reported apart (column ``compile s``), outside the timed updates.

    python -m benchmarks.learner_speed                      # everything this machine has
    python -m benchmarks.learner_speed --devices cpu --shapes 20x32 --repeats 3
    python -m benchmarks.learner_speed --shapes 20x16 --contexts 0 20 40   # the context window's cost
    python -m benchmarks.learner_speed --devices cuda --gates ur --shapes 80x256 --compile off on   # issue 13
    python -m benchmarks.learner_speed --devices cuda --gates ur --shapes 80x256 --compile on --compile-chunk 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import gymnasium as gym
import numpy as np
import torch

from actors.trajectory import Context, Trajectory
from agents import Agent
from configs.schema import AgentConfig, CoreConfig, LearnerConfig
from learner.batch import make_batch
from learner.learner import Learner

OBS_SIZE = 32
NUM_ACTIONS = 6


@dataclass(frozen=True)
class Result:
    device: str
    gate: str
    compile: str
    unroll_length: int
    batch_size: int
    context_length: int
    updates_per_s: float
    samples_per_s: float
    batch_ms: float
    compile_s: float


def synthetic_context(agent: Agent, context_length: int, batch_size: int, rng: np.random.Generator) -> Context:
    """K random steps of agent inputs before a trajectory (no episode starts: the full K are replayed)."""
    steps = (context_length, batch_size)
    return Context(
        obs=rng.normal(size=(*steps, OBS_SIZE)).astype(np.float32),
        prev_action=rng.integers(0, NUM_ACTIONS, size=steps),
        prev_reward=rng.normal(size=steps).astype(np.float32),
        is_first=np.zeros(steps, bool),
        initial_state=tuple(np.zeros(tuple(t.shape), np.float32) for t in agent.initial_state(batch_size)),
    )


def synthetic_trajectory(
    agent: Agent, unroll_length: int, batch_size: int, rng: np.random.Generator, context_length: int = 0
) -> Trajectory:
    """One random rollout in the Trajectory layout, episodes ending now and then."""
    steps = (unroll_length + 1, batch_size)
    done = rng.random(steps) < 0.02
    context = synthetic_context(agent, context_length, batch_size, rng) if context_length else None
    return Trajectory(
        obs=rng.normal(size=(*steps, OBS_SIZE)).astype(np.float32),
        prev_action=rng.integers(0, NUM_ACTIONS, size=steps),
        prev_reward=rng.normal(size=steps).astype(np.float32),
        is_first=np.concatenate([np.zeros((1, batch_size), bool), done[:-1]]),
        action=rng.integers(0, NUM_ACTIONS, size=steps),
        behaviour_logits=rng.normal(size=(*steps, NUM_ACTIONS)).astype(np.float32),
        reward=rng.normal(size=steps).astype(np.float32),
        terminated=done,
        truncated=np.zeros(steps, bool),
        initial_state=tuple(np.zeros(tuple(t.shape), np.float32) for t in agent.initial_state(batch_size)),
        context=context,
    )


def make_learner(
    device: str, gate: str, hidden_size: int, compile_choice: str = "auto", compile_chunk: int = 0
) -> Learner:
    core = CoreConfig(
        cell="lstm", gate=gate, hidden_size=hidden_size, compile=compile_choice, compile_chunk=compile_chunk
    )
    agent = Agent(
        gym.spaces.Box(-np.inf, np.inf, shape=(OBS_SIZE,), dtype=np.float32),
        gym.spaces.Discrete(NUM_ACTIONS),
        AgentConfig(core=core),
    )
    return Learner(agent, LearnerConfig(device=device), total_updates=1_000_000)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    device: str,
    gate: str,
    unroll_length: int,
    batch_size: int,
    args: argparse.Namespace,
    context_length: int = 0,
    compile_choice: str = "auto",
) -> Result:
    """Median updates/s over ``args.repeats`` repeats of ``args.updates`` updates on one batch.

    The warm-up updates (at least one) pay any compilation, whose seconds ``compile_s`` reports.
    """
    torch.manual_seed(0)
    learner = make_learner(device, gate, args.hidden_size, compile_choice, args.compile_chunk)
    rng = np.random.default_rng(0)
    traj = synthetic_trajectory(learner.agent, unroll_length, batch_size, rng, context_length)
    batch_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        batch = make_batch([traj], learner.device)
        _sync(learner.device)
        batch_times.append(time.perf_counter() - start)
    for _ in range(max(args.warmup, 1)):
        learner.update(batch)
    rates = []
    for _ in range(args.repeats):
        _sync(learner.device)
        start = time.perf_counter()
        for _ in range(args.updates):
            learner.update(batch)
        _sync(learner.device)
        rates.append(args.updates / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return Result(
        device=str(learner.device),
        gate=gate,
        compile=compile_choice,
        unroll_length=unroll_length,
        batch_size=batch_size,
        context_length=context_length,
        updates_per_s=rate,
        samples_per_s=rate * unroll_length * batch_size,
        batch_ms=1000 * statistics.median(batch_times),
        compile_s=sum(learner.agent.core.compiled_unroll.compile_seconds.values()),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices)
    parser.add_argument("--gates", nargs="+", default=["standard", "ur"])
    parser.add_argument("--shapes", nargs="+", default=["20x32", "80x256"], help="TxB")
    parser.add_argument("--contexts", nargs="+", type=int, default=[0], help="context lengths K to time")
    parser.add_argument("--compile", nargs="+", default=["auto"], choices=["auto", "on", "off"],
                        help="agent.core.compile choices to time (auto: compiled on CUDA only)")  # fmt: skip
    parser.add_argument("--compile-chunk", type=int, default=0,
                        help="agent.core.compile_chunk of the compiled rows (0: one graph of the whole unroll)")  # fmt: skip
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=3, help="updates per timed repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    return parser.parse_args(argv)


def format_row(r: Result) -> str:
    """One markdown table row of ``main``'s table."""
    return (
        f"| {r.device} | lstm/{r.gate} | {r.compile} | {r.unroll_length} | {r.batch_size} | {r.context_length} "
        f"| {r.updates_per_s:.2f} | {r.samples_per_s:,.0f} | {r.batch_ms:.2f} | {r.compile_s:.1f} |"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, cuda: {torch.cuda.is_available()}")
    print("| device | core | compile | T | B | K | updates/s | samples/s | make_batch ms | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for device in args.devices:
        for shape in args.shapes:
            unroll_length, batch_size = (int(x) for x in shape.split("x"))
            for gate in args.gates:
                for context_length in args.contexts:
                    for compile_choice in args.compile:
                        r = measure(device, gate, unroll_length, batch_size, args, context_length, compile_choice)
                        print(format_row(r), flush=True)


if __name__ == "__main__":
    main()
