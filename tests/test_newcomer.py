"""A new user's first minutes, as the README tells them: train the default preset, evaluate, resume.

Each step is the real command line in a fresh process, run from an empty folder (so that nothing
depends on the working directory being the project root), with only a tiny budget added. The run
folder is then read back the way a user reads it: config.yaml, TensorBoard scalars, a checkpoint,
summary.json, curves.png, eval.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs import load_config
from learner import metrics as m
from learner.plots import read_scalars
from learner.run_dir import checkpoint_env_steps, latest_checkpoint, read_summary

ROOT = Path(__file__).resolve().parents[1]
FIRST_BUDGET, RESUMED_BUDGET = 4000, 6000
MAX_RETURN = 1.5  # PassiveMatch delay 10: 10 apples x 0.05 + the colour match (docs/envs.md)


def run_impala(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "run_impala.py"), *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def train_watching_ray(cwd: Path, *args: str) -> tuple[str, dict[int, str]]:
    """Run the training command; return its output and the process tree it had at its first progress line."""
    command = [sys.executable, str(ROOT / "run_impala.py"), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, tree = [], {}
    try:
        for line in process.stdout:
            lines.append(line)
            if not tree and "steps/s" in line:
                tree = descendants(process.pid)
        process.wait(timeout=180)
    finally:
        process.kill()
    output = "".join(lines)
    assert process.returncode == 0, output[-4000:]
    return output, tree


def descendants(pid: int) -> dict[int, str]:
    """``{pid: command}`` of every process below ``pid`` (Ray's gcs_server, raylet, agents, workers)."""
    ps = ["ps", "-ww", "-eo", "pid=,ppid=,args="]  # -ww: whole command lines, whatever the terminal's width
    listing = subprocess.run(ps, capture_output=True, text=True, check=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for row in listing.splitlines():
        child, parent, command = (row.split(None, 2) + [""])[:3]
        children.setdefault(int(parent), []).append((int(child), command))
    found, frontier = {}, [pid]
    while frontier:
        for child, command in children.get(frontier.pop(), []):
            found[child] = command
            frontier.append(child)
    return found


def still_running(pids: dict[int, str], within_s: float) -> dict[int, str]:
    deadline = time.monotonic() + within_s
    while True:
        alive = {pid: cmd for pid, cmd in pids.items() if Path(f"/proc/{pid}").exists() and not zombie(pid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.ray
def test_train_evaluate_resume_from_an_empty_folder(tmp_path):
    runs = tmp_path / "runs"
    budget = [f"run.total_env_steps={FIRST_BUDGET}", f"run.log_dir={runs}", "run.console_interval_s=1"]
    output, ray_tree = train_watching_ray(tmp_path, *budget)
    assert "steps/s" in output and "Traceback" not in output, output[-4000:]
    assert any("raylet" in cmd for cmd in ray_tree.values()), f"no local Ray under the driver: {ray_tree}"
    assert not still_running(ray_tree, within_s=15), "Ray processes outlived the driver"

    (run_dir,) = runs.iterdir()
    assert run_dir.name.startswith("gatedrl_PassiveMatch_v0-lstm-ur-")
    check_first_run(run_dir)

    evaluation = json.loads(run_impala(tmp_path, "--eval", str(run_dir), "--episodes", "3").stdout)
    assert evaluation["episodes"] == 3 and set(evaluation) >= {"greedy", "sampled"}
    assert json.loads((run_dir / "eval.json").read_text()) == evaluation
    assert 0.0 <= evaluation["sampled"]["mean_return"] <= MAX_RETURN

    first = read_summary(run_dir)
    run_impala(tmp_path, "--resume", str(run_dir), f"run.total_env_steps={RESUMED_BUDGET}")
    check_resumed_run(run_dir, first)

    # The resumed budget is not written back: the run's own budget is reached, so a plain resume stops at once.
    resumed = read_summary(run_dir)
    again = run_impala(tmp_path, "--resume", str(run_dir))
    assert "is finished" in again.stdout and read_summary(run_dir) == resumed


def check_first_run(run_dir: Path) -> None:
    config = load_config(run_dir / "config.yaml")
    assert config.env.id == "gatedrl/PassiveMatch-v0" and config.env.kwargs == {"delay": 10}
    assert (config.agent.core.cell, config.agent.core.gate) == ("lstm", "ur")
    assert config.run.total_env_steps == FIRST_BUDGET

    scalars = read_scalars(run_dir)
    steps, returns = scalars[m.EPISODE_RETURN]
    assert steps and steps == sorted(steps) and all(0.0 <= r <= MAX_RETURN for r in returns)
    assert scalars[m.LOSS_TOTAL][0][-1] >= FIRST_BUDGET

    assert checkpoint_env_steps(latest_checkpoint(run_dir)) >= FIRST_BUDGET
    summary = read_summary(run_dir)
    assert summary["env_steps"] >= FIRST_BUDGET and summary["updates"] > 0
    assert summary["episodes"] > 0 and 0.0 <= summary["mean_return"] <= MAX_RETURN
    assert summary["env_steps_per_s"] > 0 and summary["stopped_early"] is False
    assert (run_dir / "curves.png").read_bytes().startswith(b"\x89PNG")


def check_resumed_run(run_dir: Path, first: dict) -> None:
    summary = read_summary(run_dir)
    assert summary["env_steps"] >= RESUMED_BUDGET and summary["updates"] > first["updates"]
    assert summary["episodes"] > first["episodes"]  # the run's total, not this resume's alone
    assert checkpoint_env_steps(latest_checkpoint(run_dir)) == summary["env_steps"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # one per start
    steps, _ = read_scalars(run_dir)[m.LOSS_TOTAL]
    assert steps[-1] >= RESUMED_BUDGET
