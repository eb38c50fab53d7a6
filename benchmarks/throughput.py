"""System throughput against the ceiling of its parts, on the same cores.

The system: the real loop (``learner.loop.train``) on a fresh local Ray instance of its own, for
``--updates`` x T x B env steps, into a temporary run folder; its rate is ``env_steps_per_s`` of
the run's ``summary.json`` (the loop starts its clock after ``pool.wait_ready()``, so Ray and
actor start-up are excluded). The parts, each alone on one thread (``torch.set_num_threads(1)``):

    a  random-action stepping of one ``envs.make_env`` environment          env steps/s
    b  batched actor inference, T = 1, B = envs_per_actor, real Agent,       B x calls/s
       action sampling included
    c  ``Learner.update`` (with ``make_batch``) on a real batch of the       T x B samples/s
       preset's shape (batch_size rollouts of a real ``RolloutWorker``)

Every env step costs 1/a + 1/b + 1/c core-seconds, and these add up whichever process
spends them, so C cores can do at most  ceiling = C / (1/a + 1/b + 1/c)  env steps/s.
The system's fraction of the ceiling is the figure of merit; each repeat measures the
parts and the system back to back, and the tables quote medians over repeats.

    python -m benchmarks.throughput --repeats 3 --updates 50       # cartpole and passive_match, lstm/standard and ur
    python -m benchmarks.throughput --preset cartpole --set actors.envs_per_actor=16 actors.rollouts_in_flight=4

Results and the analysis of the gap: docs/bench_throughput.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import torch

from actors.local_pool import build_worker
from agents import Agent
from configs import Config, load_config
from envs import make_env
from learner.learner import Learner
from learner.loop import learner_threads, probe_spaces, train, updates_for
from learner.plots import read_scalars
from learner.remote import train_step

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {name: ROOT / "configs" / f"{name}.yaml" for name in ("cartpole", "passive_match", "default")}


class Parts(NamedTuple):
    """Rates of the parts alone, one thread each (per second)."""

    env: float  # a: env steps/s
    inference: float  # b: env steps/s (B x T=1 calls/s)
    learner: float  # c: samples/s (T x B x updates/s)
    worker: float  # diagnostic: a real RolloutWorker's rollout(), env steps/s (a and b together, plus plumbing)


class System(NamedTuple):
    """The full system's rate and where its time went (from summary.json and the TensorBoard events)."""

    steps_per_s: float
    updates: int
    wall_s: float
    learner_ms: float  # mean Learner.update wall time
    queue_wait_ms: float  # mean per update: waiting for rollouts + fetching them
    policy_lag: float  # mean versions between acting and learning


def ceiling(cores: float, parts: Parts) -> float:
    """Env steps/s that ``cores`` could reach if nothing but the parts cost time: C / (1/a + 1/b + 1/c)."""
    return cores / (1.0 / parts.env + 1.0 / parts.inference + 1.0 / parts.learner)


def worker_ceiling(cores: float, parts: Parts) -> float:
    """The same bound with the real worker's cost per step in place of 1/a + 1/b: C / (1/worker + 1/c)."""
    return cores / (1.0 / parts.worker + 1.0 / parts.learner)


def bench_config(preset: str, gate: str, hidden_size: int, updates: int, extra: list[str]) -> Config:
    """The preset with a ``hidden_size`` LSTM core and ``gate``, long enough for ``updates`` updates."""
    overrides = [
        f"agent.core.gate={gate}",
        f"agent.core.hidden_size={hidden_size}",
        "run.console_interval_s=1000000",
        "run.checkpoint_interval_min=1000000",
        *extra,
    ]
    config = load_config(PRESETS[preset], overrides)
    a = config.actors
    env_steps = updates * a.unroll_length * a.envs_per_actor * config.learner.batch_size
    return load_config(PRESETS[preset], [*overrides, f"run.total_env_steps={env_steps}"])


def timed_rate(step: Callable[[], object], units_per_call: float, min_seconds: float, warmup: int = 3) -> float:
    """Units per second of ``step``, called until at least ``min_seconds`` have passed (after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or calls == 0:
        step()
        calls += 1
    return units_per_call * calls / elapsed


def env_rate(config: Config, seconds: float) -> float:
    """(a) Random-action stepping of one environment, resets included."""
    env = make_env(config.env, seed=config.run.seed)
    env.action_space.seed(config.run.seed)
    env.reset(seed=config.run.seed)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()

    try:
        return timed_rate(step, 1, seconds, warmup=10)
    finally:
        env.close()


def inference_rate(config: Config, seconds: float) -> float:
    """(b) One T = 1 forward of the real Agent on B = envs_per_actor inputs, then sampling, as an actor does."""
    obs_space, action_space = probe_spaces(config)
    agent = Agent(obs_space, action_space, config.agent).eval()
    num_envs = config.actors.envs_per_actor
    obs_space.seed(config.run.seed)
    obs = torch.from_numpy(np.stack([np.asarray(obs_space.sample()) for _ in range(num_envs)])).unsqueeze(0)
    prev_action = torch.zeros((1, num_envs, *(action_space.shape or ())), dtype=torch.int64)
    prev_reward = torch.zeros((1, num_envs))
    is_first = torch.zeros((1, num_envs), dtype=torch.bool)
    generator = torch.Generator().manual_seed(config.run.seed)
    state = [agent.initial_state(num_envs)]

    def step() -> None:
        with torch.inference_mode():
            output, state[0] = agent(obs, prev_action, prev_reward, is_first, state[0])
            agent.distribution.sample(output.policy_logits, generator=generator)[0].numpy()

    return timed_rate(step, num_envs, seconds)


def worker_and_learner_rates(config: Config, seconds: float) -> tuple[float, float]:
    """(c) ``Learner.update`` samples/s on ``batch_size`` real rollouts; and the real worker's env steps/s."""
    obs_space, action_space = probe_spaces(config)
    agent_factory = functools.partial(Agent, obs_space, action_space, config.agent)
    learner = Learner(agent_factory(), config.learner, updates_for(config))
    env_factory = functools.partial(make_env, config.env)
    worker = build_worker(env_factory, agent_factory, config.actors, 0, config.learner.discount, config.run.seed)
    try:
        worker.set_weights(*learner.get_weights())
        worker_rate = timed_rate(worker.rollout, config.actors.unroll_length * config.actors.envs_per_actor, seconds, 1)
        trajectories = [worker.rollout() for _ in range(config.learner.batch_size)]
    finally:
        worker.close()
    samples = config.actors.unroll_length * config.actors.envs_per_actor * config.learner.batch_size
    learner_rate = timed_rate(lambda: train_step(learner, trajectories, False), samples, seconds, warmup=1)
    return worker_rate, learner_rate


def measure_parts(config: Config, seconds: float) -> Parts:
    torch.set_num_threads(1)
    torch.manual_seed(config.run.seed)
    worker, learner = worker_and_learner_rates(config, seconds)
    return Parts(env_rate(config, seconds), inference_rate(config, seconds), learner, worker)


def measure_system(config: Config) -> System:
    """Train ``config`` on the running Ray for ``run.total_env_steps``; read back its rate and timings."""
    with tempfile.TemporaryDirectory(prefix="gatedrl_bench_") as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        train(config, run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        scalars = {tag: values for tag, (_, values) in read_scalars(run_dir).items()}
    learner_ms = scalars.get("perf/learner_ms", [float("nan")])
    return System(
        steps_per_s=summary["env_steps_per_s"],
        updates=summary["updates"],
        wall_s=summary["wall_time_s"],
        learner_ms=statistics.mean(learner_ms),
        queue_wait_ms=scalars.get("perf/queue_wait_ms", [float("nan")])[-1],  # the loop logs a running mean
        policy_lag=statistics.mean(scalars.get("actors/policy_lag", [float("nan")])),
    )


def median_tuple(rows: list[NamedTuple]) -> NamedTuple:
    """Field-wise median of NamedTuples of one type."""
    return type(rows[0])(*(statistics.median(values) for values in zip(*rows, strict=True)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["cartpole", "passive_match"])
    parser.add_argument("--gates", nargs="+", default=["standard", "ur"], help="lstm gates (agent.core.gate)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=50, help="length of each system run, in learner updates")
    parser.add_argument("--part-seconds", type=float, default=2.0, help="timed seconds per part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=float, default=float(os.cpu_count() or 1), help="C in the ceiling")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    parser.add_argument(
        "--worker-niceness", type=int, default=None, help="nice value of Ray's worker processes (Ray's default: 15)"
    )
    return parser.parse_args(argv)


def run_case(config: Config, args: argparse.Namespace, label: str) -> tuple[Parts, System, list[float]]:
    """``args.repeats`` x (parts, then the system); returns medians and each repeat's fraction of the ceiling."""
    parts, systems, fractions = [], [], []
    for repeat in range(args.repeats):
        parts.append(measure_parts(config, args.part_seconds))
        systems.append(measure_system(config))
        fractions.append(systems[-1].steps_per_s / ceiling(args.cores, parts[-1]))
        p, q = parts[-1], systems[-1]
        print(
            f"  {label} #{repeat}: a {p.env:,.0f} b {p.inference:,.0f} c {p.learner:,.0f} worker {p.worker:,.0f}"
            f" | system {q.steps_per_s:,.0f} = {fractions[-1]:.0%} of ceiling | learner {q.learner_ms:.0f} ms,"
            f" queue wait {q.queue_wait_ms:.0f} ms, lag {q.policy_lag:.2f} | load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return median_tuple(parts), median_tuple(systems), fractions


def print_tables(rows: list[tuple], cores: float, repeats: int) -> None:
    """The markdown tables of docs/bench_throughput.md: rates and fractions, then where the time went.

    The fraction is the median of the repeats' own fractions (each from parts and system measured
    back to back), not the ratio of the medians shown beside it.
    """
    print(f"\nmedians over {repeats} repeats; parts on 1 thread each; rates in env steps/s (c: samples/s)")
    print("| case | T x B (learner) | a env | b inference | c learner | ceiling | system | fraction | range |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, config, parts, system, fractions in rows:
        a = config.actors
        shape = f"{a.unroll_length} x {a.envs_per_actor * config.learner.batch_size}"
        print(
            f"| {label} | {shape} | {parts.env:,.0f} | {parts.inference:,.0f} | {parts.learner:,.0f} "
            f"| {ceiling(cores, parts):,.0f} | {system.steps_per_s:,.0f} | {statistics.median(fractions):.0%} "
            f"| {min(fractions):.0%}-{max(fractions):.0%} |"
        )
    print("\n| case | worker alone | ceiling with worker | updates | learner ms | queue wait ms | learner busy | lag |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _, parts, system, _ in rows:
        busy = system.updates * system.learner_ms / 1000 / system.wall_s
        print(
            f"| {label} | {parts.worker:,.0f} | {worker_ceiling(cores, parts):,.0f} | {system.updates:.0f} "
            f"| {system.learner_ms:.1f} | {system.queue_wait_ms:.1f} | {busy:.0%} | {system.policy_lag:.2f} |"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import ray

    print(f"torch {torch.__version__}, ray {ray.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(
        f"overrides: {args.set}; worker niceness {args.worker_niceness}; "
        f"ceiling = C / (1/a + 1/b + 1/c), C = {args.cores:g} (core-seconds per step add up)"
    )
    if args.worker_niceness is not None:
        # Read by the raylet that ray.init starts: the actors' priority against other processes.
        os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # noqa: SIM112 (Ray spells it so)
    # address="local": always a fresh instance of our own, never another process's cluster on this machine.
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for preset in args.preset:
            for gate in args.gates:
                config = bench_config(preset, gate, args.hidden_size, args.updates, args.set)
                label = f"{preset} lstm/{gate}"
                print(f"{label}: learner threads {learner_threads(config)}", flush=True)
                rows.append((label, config, *run_case(config, args, label)))
    finally:
        ray.shutdown()
    print_tables(rows, args.cores, args.repeats)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
