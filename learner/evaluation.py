"""Evaluate a run's newest checkpoint: greedy and sampled episodes with the recurrent state carried."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from actors.evaluate import evaluate
from agents import Agent
from configs import load_config
from envs import make_env
from learner.run_dir import CONFIG_FILE, latest_checkpoint

EVAL_FILE = "eval.json"


def load_agent(run_dir: Path, env: Any) -> tuple[Agent, Path]:
    """The agent of ``run_dir``'s config with the weights of its newest checkpoint."""
    config = load_config(Path(run_dir) / CONFIG_FILE)
    path = latest_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {Path(run_dir) / 'checkpoints'}")
    agent = Agent(env.observation_space, env.action_space, config.agent)
    state = torch.load(path, map_location="cpu", weights_only=True)
    agent.load_state_dict(state["agent"])
    return agent, path


def evaluate_run(run_dir: Path, episodes: int, seed: int = 1_000_000) -> dict[str, Any]:
    """Play ``episodes`` greedy and ``episodes`` sampled episodes; write and return ``eval.json``.

    The seeds start far from the training seeds so that evaluation episodes are new ones.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir / CONFIG_FILE)
    env = make_env(config.env, seed=seed)
    try:
        agent, checkpoint = load_agent(run_dir, env)
        results = {"checkpoint": str(checkpoint), "episodes": episodes}
        for greedy in (True, False):
            result = evaluate(env, agent, episodes, greedy=greedy, seed=seed)
            results[result.mode] = {
                "mean_return": result.mean_return,
                "success_rate": result.success_rate,
                "mean_length": sum(result.lengths) / len(result.lengths),
            }
    finally:
        env.close()
    (run_dir / EVAL_FILE).write_text(json.dumps(results, indent=2))
    return results
