"""End to end: run_impala.py on a real local Ray, learning a small memory task.

One training run (module fixture) is shared by the tests that read its outputs: the
TensorBoard event file, the summary, the checkpoint, evaluation and resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import run_impala
from learner import metrics as m
from learner.run_dir import checkpoint_path, latest_checkpoint, read_summary, write_summary

ROOT = Path(__file__).resolve().parents[1]

# PassiveMatch with a short delay (name the cue's colour after 2 distractor steps). A memoryless
# policy matches 1 time in 4: return 0.25 + apples (at most 2 x 0.05); the bar is far above that.
# Measured 2026-11-30 (8 seeds, 2 cores): the 100-episode mean passes 0.9 at 39k-59k steps and ends
# at 0.97-1.02. The rate decays linearly, as in every preset: at a constant 3e-3 two runs in seven
# ended below the bar (0.71, 0.78); the one whose curve was read had learned (1.02 at 44k) and then
# dipped (the dips of docs/value_normalisation.md).
LEARNS = [
    "env.id=gatedrl/PassiveMatch-v0",
    "env.kwargs.delay=2",
    "agent.mlp_sizes=[32]",
    "agent.core.hidden_size=32",
    "agent.core.gate=ur",
    "actors.envs_per_actor=8",
    "actors.unroll_length=10",
    "learner.batch_size=2",
    "learner.optimizer=adam",
    "learner.learning_rate=3e-3",
    "learner.lr_schedule=linear",
    "run.gate_stats_every_updates=20",
    "run.console_interval_s=5",
]
STEPS_PER_UPDATE = 2 * 10 * 8
TOTAL_STEPS = 80_000
CHANCE_RETURN = 0.25 + 2 * 0.05


def event_scalars(run_dir: Path) -> dict[str, list]:
    """All scalar events of every event file in ``run_dir``, by tag."""
    result: dict[str, list] = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            result.setdefault(tag, []).extend(accumulator.Scalars(tag))
    return result


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "learn"
    overrides = [*LEARNS, f"run.total_env_steps={TOTAL_STEPS}", f"run.log_dir={run_dir.parent}", "run.name=learn"]
    assert run_impala.main(overrides) == 0
    assert not ray.is_initialized(), "run_impala must shut Ray down"
    return run_dir


@pytest.mark.slow
@pytest.mark.ray
def test_short_run_learns_the_memory_task(trained_run):
    summary = read_summary(trained_run)
    assert summary["env_steps"] >= TOTAL_STEPS
    assert summary["actor_restarts"] == 0
    # Learned: the 100-episode mean passes 0.9 at some point (chance is 0.35). Then it must stay well
    # above chance to the end. Not "above 0.8 at the end": one CI run in many (2026-12-02, beside other
    # work) reached 0.97 at 43k steps and ended at 0.74, one of the dips of docs/value_normalisation.md;
    # 8 reruns the same day beside a training run all ended at 1.00-1.02.
    best = max(event.value for event in event_scalars(trained_run)[m.EPISODE_RETURN_MEAN100])
    assert best >= 0.9, summary
    assert summary["mean_return"] > CHANCE_RETURN + 0.3, summary


@pytest.mark.slow
@pytest.mark.ray
def test_event_file_holds_the_main_tags(trained_run):
    scalars = event_scalars(trained_run)
    for tag in (
        m.EPISODE_RETURN,
        m.EPISODE_LENGTH,
        m.EPISODES_ENDED,
        m.LOSS_TOTAL,
        m.LOSS_PG,
        m.LOSS_BASELINE,
        m.LOSS_ENTROPY,
        m.VTRACE_RHO_MEAN,
        m.VTRACE_RHO_CLIP_FRAC,
        m.PERF_ENV_STEPS_PER_S,
        m.PERF_LEARNER_MS,
        m.PERF_QUEUE_WAIT_MS,
        m.ACTORS_POLICY_LAG,
        m.OPTIM_LEARNING_RATE,
        m.GATES_BINARY_FRAC,
    ):
        assert tag in scalars, f"{tag} missing from {sorted(scalars)}"
    # Logged with each update's mean return, as the weight of that mean: a whole count, never 0.
    counts = [event.value for event in scalars[m.EPISODES_ENDED]]
    assert len(counts) == len(scalars[m.EPISODE_RETURN]) and all(c >= 1 and c == int(c) for c in counts)
    steps = [event.step for event in scalars[m.LOSS_TOTAL]]
    assert steps == sorted(steps) and steps[-1] >= TOTAL_STEPS
    accumulator = EventAccumulator(str(next(trained_run.glob("events.out.tfevents.*"))))
    accumulator.Reload()
    assert {m.GATES_F, m.GATES_R, m.GATES_G} <= set(accumulator.Tags()["histograms"])
    assert "config/text_summary" in accumulator.Tags()["tensors"]


@pytest.mark.slow
@pytest.mark.ray
def test_curves_png_is_drawn_from_the_events(trained_run):
    png = (trained_run / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.slow
@pytest.mark.ray
def test_evaluation_plays_greedy_and_sampled_episodes(trained_run, capsys):
    assert run_impala.main(["--eval", str(trained_run), "--episodes", "20"]) == 0
    result = json.loads((trained_run / "eval.json").read_text())
    assert result["greedy"]["success_rate"] is not None
    assert 0.0 <= result["sampled"]["success_rate"] <= 1.0
    assert result["greedy"]["mean_length"] == 3 + 2 + 1  # cue + delay + choice
    assert '"greedy"' in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.ray
def test_resume_continues_the_step_counter(trained_run):
    before = read_summary(trained_run)["env_steps"]
    more = before + 10 * STEPS_PER_UPDATE
    assert run_impala.main(["--resume", str(trained_run), f"run.total_env_steps={more}"]) == 0
    after = read_summary(trained_run)
    assert after["env_steps"] >= more
    assert after["updates"] > before // STEPS_PER_UPDATE
    event_files = sorted(trained_run.glob("events.out.tfevents.*"))
    assert len(event_files) == 2  # a new file beside the old one
    resumed = EventAccumulator(str(event_files[-1]))
    resumed.Reload()
    first_step = resumed.Scalars(m.LOSS_TOTAL)[0].step
    assert before < first_step <= before + 2 * STEPS_PER_UPDATE
    assert latest_checkpoint(trained_run).name.endswith(f"{after['env_steps']:012d}.pt")


def test_bad_input_fails_in_one_line_before_ray_starts(tmp_path, capsys):
    for overrides, expected in [
        (["agent.core.gate=urr"], "did you mean 'ur'?"),
        (["env.id=gatedrl/PasiveMatch-v0"], "gatedrl/PassiveMatch-v0"),
        (["agent.core.cell=none", "agent.core.gate=ur"], "none"),
        (["agent.core.options.t_max=5"], "t_max"),
    ]:
        code = run_impala.main([*overrides, f"run.log_dir={tmp_path}"])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert not ray.is_initialized()
    assert not any(tmp_path.iterdir()), "nothing may be written for a run that cannot start"


def test_resume_without_checkpoint_is_refused(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("run: {total_env_steps: 10}\n")
    assert run_impala.main(["--resume", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_resume_of_a_finished_run_says_so_and_touches_nothing(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("run: {total_env_steps: 4000}\n")
    checkpoint = checkpoint_path(tmp_path, 4160)
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    write_summary(tmp_path, {"env_steps": 4160, "episodes": 300, "mean_return": 1.2})
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert run_impala.main(["--resume", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out and "is finished" in out and f"--resume {tmp_path} run.total_env_steps=" in out, out
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert not ray.is_initialized()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """A real process (local backend: no Ray start-up cost) stopped by SIGTERM mid-run."""
    command = [sys.executable, str(ROOT / "run_impala.py"), *LEARNS, "actors.backend=local", "run.name=stopped",
               f"run.log_dir={tmp_path}", "run.total_env_steps=100000000", "run.console_interval_s=0.1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            if "steps/s" in line or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, output
    summary = read_summary(tmp_path / "stopped")
    assert summary["stopped_early"] is True
    assert summary["env_steps"] < 100_000_000
    assert latest_checkpoint(tmp_path / "stopped") is not None


def test_ray_init_arguments_for_laptop_cluster_and_submitted_job():
    job = {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}
    assert run_impala.ray_init_args(None, True, {}) == {"address": "local", "include_dashboard": False}
    assert run_impala.ray_init_args(None, True, job) == {}  # joins the job's cluster, code already there
    shipped = run_impala.ray_init_args("auto", True, {})
    assert shipped["address"] == "auto" and shipped["runtime_env"]["working_dir"] == str(ROOT)
    assert "/runs" in shipped["runtime_env"]["excludes"]
    assert run_impala.ray_init_args("auto", False, {}) == {"address": "auto"}
    assert run_impala.ray_init_args("ray://head:10001", True, job) == {"address": "ray://head:10001"}
