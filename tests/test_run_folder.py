"""One owner of the run folder: paths resolved in the driver (also inside ``ray job submit``),
checkpoints handed over as bytes and written atomically by the driver."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import pytest
import torch

import run_impala
from actors.local_pool import LocalActorPool
from configs import load_config
from envs import make_env
from learner.loop import Progress, probe_spaces, restore, save_checkpoint
from learner.remote import LocalLearner
from learner.run_dir import checkpoint_path, latest_checkpoint, resolve_run_path, write_checkpoint
from tests.tiny_agent import TinyAgent

JOB = {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}  # what Ray sets in a submitted job's driver
SMALL = ["env.id=gatedrl/PassiveMatch-v0", "env.kwargs.delay=2", "actors.num_actors=1", "actors.envs_per_actor=2",
         "actors.unroll_length=4", "learner.batch_size=1", "run.name=r"]  # fmt: skip


def test_relative_run_paths_resolve_against_the_drivers_folder(tmp_path):
    assert resolve_run_path("runs", {}, cwd=tmp_path) == tmp_path / "runs"
    assert resolve_run_path(tmp_path / "x" / ".." / "abs", {}) == tmp_path / "abs"
    assert resolve_run_path("~/r", {}) == Path.home().resolve() / "r"


def test_inside_a_submitted_job_relative_paths_go_to_a_persistent_home(tmp_path):
    # The job's working directory is Ray's temporary copy of the project: never the base.
    assert resolve_run_path("runs", JOB, cwd=tmp_path) == Path.home().resolve() / "gatedrl" / "runs"
    home = {**JOB, "GATEDRL_HOME": str(tmp_path / "shared")}
    assert resolve_run_path("runs/a", home, cwd=Path("/tmp")) == tmp_path / "shared" / "runs" / "a"
    assert resolve_run_path(tmp_path / "nfs", home) == tmp_path / "nfs"  # absolute: as given
    assert resolve_run_path("runs", {"GATEDRL_HOME": "/elsewhere"}, cwd=tmp_path) == tmp_path / "runs"  # not a job


def test_resolve_config_gives_an_absolute_run_folder_inside_a_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = run_impala.parse_args(SMALL)
    _, run_dir = run_impala.resolve_config(args, {})
    assert run_dir == tmp_path / "runs" / "r"
    _, job_dir = run_impala.resolve_config(args, {**JOB, "GATEDRL_HOME": str(tmp_path / "home")})
    assert job_dir == tmp_path / "home" / "runs" / "r"


def test_resume_inside_a_job_finds_the_run_in_the_job_home(tmp_path):
    home = tmp_path / "home"
    run_dir = home / "runs" / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run:\n  name: r\n")
    checkpoint_path(run_dir, 10).write_bytes(b"x")
    args = argparse.Namespace(overrides=[], address=None, resume=Path("runs/r"), config=None)
    _, resolved = run_impala.resolve_config(args, {**JOB, "GATEDRL_HOME": str(home)})
    assert resolved == run_dir


def test_write_checkpoint_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = checkpoint_path(tmp_path, 7)
    write_checkpoint(path, b"first")
    write_checkpoint(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    (path.parent / f".{checkpoint_path(tmp_path, 99).name}.tmp-1").write_bytes(b"half")  # a crash's leftover
    assert latest_checkpoint(tmp_path) == path


def test_driver_writes_the_learners_bytes_and_restores_from_them(tmp_path):
    config = load_config(None, SMALL)
    obs_space, action_space = probe_spaces(config)
    factory = functools.partial(TinyAgent, obs_space, action_space, config.agent)
    learner = LocalLearner(factory, config.learner, total_updates=10)
    pool = LocalActorPool(functools.partial(make_env, config.env), factory, config.actors, 0.99, 0)
    pool.publish_weights(*learner.get_weights())
    learner.update(pool.next_trajectories(1))
    counters = learner.counters()
    progress = Progress(env_steps=counters.env_steps, updates=counters.updates)
    figures = save_checkpoint(learner, tmp_path, progress, pool, stopped=False)
    pool.close()
    assert figures["env_steps"] == 8 and figures["updates"] == 1
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 8)
    restored = LocalLearner(factory, config.learner, total_updates=10)
    restore(restored, tmp_path)
    assert restored.counters() == counters
    for name, value in learner.get_weights()[1].items():
        torch.testing.assert_close(restored.get_weights()[1][name], value)


def test_a_lost_learner_is_one_line_naming_the_checkpoint_to_resume(tmp_path, monkeypatch, capsys):
    from learner.remote import LearnerLost

    def lose(*args, **kwargs):
        run_dir = tmp_path / "runs" / "r"
        write_checkpoint(checkpoint_path(run_dir, 40), b"x")
        raise LearnerLost("the learner's Ray actor died (ActorDiedError)")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_impala, "run_training", lose)
    monkeypatch.setattr(run_impala, "check_buildable", lambda config: None)
    assert run_impala.main(SMALL) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ActorDiedError" in err
    assert f"--resume {tmp_path / 'runs' / 'r'}" in err and "ckpt-000000000040.pt" in err


def test_a_lost_learner_leaves_the_newest_checkpoint_and_its_summary(tmp_path, monkeypatch):
    """The loop, when the learner's actor dies after some checkpoints: nothing more is saved, and the
    summary is the newest checkpoint's, marked stopped early (not the lost updates' figures)."""
    import learner.loop as loop
    from learner.remote import LearnerLost
    from learner.run_dir import checkpoint_env_steps, read_summary

    class Doomed(LocalLearner):
        def update(self, trajectories, collect_gates=False):
            if self.learner.updates == 5:
                raise LearnerLost("the learner's Ray actor died (ActorDiedError)")
            return super().update(trajectories, collect_gates)

    monkeypatch.setattr(loop, "make_learner", lambda config, factory: Doomed(factory, config.learner, 100))
    config = load_config(None, [*SMALL, "actors.backend=local", "agent.mlp_sizes=[8]", "agent.core.hidden_size=8",
                                "run.checkpoint_interval_min=1e-9", "run.total_env_steps=1000"])  # fmt: skip
    with pytest.raises(LearnerLost):
        loop.train(config, tmp_path)
    newest = latest_checkpoint(tmp_path)
    assert checkpoint_env_steps(newest) == 5 * 8
    summary = read_summary(tmp_path)
    assert summary["env_steps"] == 5 * 8 and summary["stopped_early"] is True
