"""Train (or evaluate) an IMPALA agent with a gated memory core.

    python run_impala.py                                     # default preset, local Ray
    python run_impala.py --config configs/passive_match.yaml agent.core.gate=ur env.kwargs.delay=100
    python run_impala.py --address auto ...                  # join a running Ray cluster
    python run_impala.py --resume runs/<name>                # continue from the newest checkpoint
    python run_impala.py --eval runs/<name> --episodes 100   # greedy and sampled evaluation

Every config or environment error is reported in one line before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from configs import Config, ConfigError, load_config, write_config
from learner.run_dir import (
    CONFIG_FILE,
    checkpoint_env_steps,
    default_run_name,
    in_submitted_job,
    latest_checkpoint,
    resolve_run_path,
)

ROOT = Path(__file__).resolve().parent
DEFAULT_PRESET = ROOT / "configs" / "default.yaml"
# Not shipped to cluster nodes with the code: logs, checkpoints, caches. Gitignore patterns without the
# trailing slash: Ray matches each path without one, so "runs/" left the folder itself in (walked file by
# file and shipped empty) where "/runs" leaves it out whole.
SHIP_EXCLUDES = ["/runs", "/.git", "/benchmarks/out", "__pycache__", "/.pytest_cache", "/.ruff_cache"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. agent.core.gate=ur")
    parser.add_argument("--config", type=Path, help=f"YAML preset (default: {DEFAULT_PRESET.relative_to(ROOT)})")
    parser.add_argument("--address", help="Ray cluster to join ('auto', 'ray://host:10001'); default: start one here")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its newest checkpoint")
    parser.add_argument("--eval", type=Path, metavar="RUN_DIR", help="evaluate a run's newest checkpoint and exit")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per evaluation mode (with --eval)")
    parser.add_argument("--no-ship-code", action="store_true", help="cluster nodes already have this code")
    return parser.parse_intermixed_args(argv)  # overrides may come before and after options


def resolve_config(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> tuple[Config, Path]:
    """The validated config and its absolute run folder; raises ``ConfigError`` / ``ValueError`` in one line.

    Relative run paths resolve in this process (``learner.run_dir.resolve_run_path``): against
    the working directory, or inside ``ray job submit`` against ``$GATEDRL_HOME`` (``~/gatedrl``).
    """
    overrides = list(args.overrides)
    if args.address is not None:
        overrides.append(f"run.address={args.address}")
    if args.resume is not None:
        if args.config is not None:
            raise ConfigError("--resume uses the run's own config.yaml; pass overrides instead of --config")
        run_dir = resolve_run_path(args.resume, environ)
        config = load_config(run_dir / CONFIG_FILE, overrides)
        if latest_checkpoint(run_dir) is None:
            raise ConfigError(f"--resume {run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
        return config, run_dir
    config = load_config(args.config or DEFAULT_PRESET, overrides)
    core = config.agent.core
    name = config.run.name or default_run_name(config.env.id, core.cell, core.gate)
    run_dir = resolve_run_path(config.run.log_dir, environ) / name
    if (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"run folder {run_dir} already exists; use --resume {run_dir} or another run.name")
    return config, run_dir


def finished_message(config: Config, run_dir: Path) -> str | None:
    """One line when the run to resume has already reached its budget (nothing is then touched), else None."""
    steps = checkpoint_env_steps(latest_checkpoint(run_dir))
    budget = config.run.total_env_steps
    if steps < budget:
        return None
    return (
        f"{run_dir} is finished: its newest checkpoint has {steps:,} env steps, run.total_env_steps is {budget:,};"
        f" to train on, raise the budget: python run_impala.py --resume {run_dir} run.total_env_steps={2 * steps}"
    )


def check_buildable(config: Config) -> None:
    """Build one environment and the agent once, so that a bad env id, space or gate option fails now."""
    from agents import Agent
    from envs import validate_env_config
    from learner.loop import probe_spaces

    check_local_cpus(config)
    validate_env_config(config.env)
    obs_space, action_space = probe_spaces(config)
    Agent(obs_space, action_space, config.agent)


def check_local_cpus(config: Config) -> None:
    """Ray would wait forever for actors that reserve more CPUs than this machine has."""
    actors = config.actors
    needed = actors.num_actors * actors.num_cpus_per_actor
    cores = os.cpu_count() or 1
    if actors.backend == "ray" and config.run.address is None and needed > cores:
        raise ConfigError(
            f"actors.num_actors={actors.num_actors} x actors.num_cpus_per_actor={actors.num_cpus_per_actor}"
            f" reserve {needed:g} CPUs but this machine has {cores}; lower one of them (e.g. num_cpus_per_actor=0.5)"
        )


def ray_init_args(address: str | None, ship_code: bool, environ: Mapping[str, str]) -> dict:
    """Arguments of ``ray.init`` for where this driver runs.

    - Inside ``ray job submit`` (Ray sets RAY_ADDRESS and the job's runtime env): join the
      cluster; the job already carries the code, and a second working_dir would conflict.
    - No address: ``"local"`` always starts a new instance; a bare ``ray.init()`` would join any
      cluster already running on this machine (another user's, or one shutting down).
    - An address: join it, shipping this folder to the nodes unless told they have it.
    """
    if address is None and in_submitted_job(environ):
        return {}
    if address is None:
        return {"address": "local", "include_dashboard": False}
    submitted_job = in_submitted_job(environ)
    if ship_code and not submitted_job:
        return {"address": address, "runtime_env": {"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES}}
    return {"address": address}


def start_ray(config: Config, ship_code: bool) -> None:
    import ray

    ray.init(**ray_init_args(config.run.address, ship_code, os.environ))


def run_training(config: Config, run_dir: Path, resume: bool, ship_code: bool) -> dict:
    from learner.loop import train

    run_dir.mkdir(parents=True, exist_ok=True)
    # Said first, so that a submitted job's log tells where its run folder is.
    print(f"run folder: {run_dir} (on {socket.gethostname()})", flush=True)
    if not resume:
        write_config(config, run_dir / CONFIG_FILE)
    uses_ray = config.actors.backend == "ray"
    if uses_ray:
        start_ray(config, ship_code)
    try:
        return train(config, run_dir, resume=resume)
    finally:
        if uses_ray:
            import ray

            ray.shutdown()


def run_evaluation(run_dir: Path, episodes: int) -> dict:
    from learner.evaluation import evaluate_run

    return evaluate_run(run_dir, episodes)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        if args.eval is not None:
            print(json.dumps(run_evaluation(resolve_run_path(args.eval, os.environ), args.episodes), indent=2))
            return 0
        config, run_dir = resolve_config(args)
        finished = finished_message(config, run_dir) if args.resume is not None else None
        if finished is not None:
            print(finished)
            return 0
        check_buildable(config)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from learner.remote import LearnerLost  # imports Ray and torch: not before the config is known good

    try:
        summary = run_training(config, run_dir, resume=args.resume is not None, ship_code=not args.no_ship_code)
    except LearnerLost as error:
        newest = latest_checkpoint(run_dir)
        then = f"continue with: python run_impala.py --resume {run_dir}" if newest else "no checkpoint was made"
        print(f"error: {error}; newest checkpoint: {newest}; {then}", file=sys.stderr)
        return 1
    print(json.dumps({"run_dir": str(run_dir), **{k: v for k, v in summary.items() if k != "last_metrics"}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
