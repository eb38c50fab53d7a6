"""The RL memory suite: metrics against plain loops, run bookkeeping, and a tiny real suite
(one very short ``run_impala.py`` run per cell, local actors) that produces its table and figure
and is skipped when started again. Nothing here asserts which cell learns best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import memory_suite as suite


def reference_auc(steps, returns):
    area = 0.0
    for i in range(1, len(steps)):
        area += 0.5 * (returns[i] + returns[i - 1]) * (steps[i] - steps[i - 1])
    return area / (steps[-1] - steps[0])


def test_area_under_curve_matches_a_loop():
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(1, 50, size=30)).astype(np.float64)
    returns = rng.normal(size=30)
    assert suite.area_under_curve(steps, returns) == pytest.approx(reference_auc(steps, returns), rel=1e-12)
    assert suite.area_under_curve(np.array([5.0]), np.array([2.0])) == 2.0
    assert suite.area_under_curve(np.zeros(0), np.zeros(0)) is None


def test_steps_to_threshold_matches_a_loop():
    steps = np.arange(1, 41, dtype=np.float64) * 100
    returns = np.concatenate([np.zeros(20), np.ones(20)])
    window = suite.SMOOTHING
    expected = None
    for i in range(len(returns)):
        if np.mean(returns[max(0, i - window + 1) : i + 1]) >= 0.9:
            expected = steps[i]
            break
    assert suite.steps_to_threshold(steps, returns, 0.9) == expected == 2900.0
    assert suite.steps_to_threshold(steps, returns, 1.5) is None


def tiny_preset() -> suite.Preset:
    task = suite.Task("PM-d2", "gatedrl/PassiveMatch-v0", 1.1, 6, 300, 6, {"delay": 2})
    return suite.Preset(suite.ROOT / "configs" / "suite_cpu.yaml", (task,), (0,), "local", suite.cpu_unroll)


def test_overrides_name_every_setting():
    plan = suite.RunPlan(tiny_preset().tasks[0], "lstm/chrono", 4)
    items = suite.overrides(plan, Path("/x/runs"), "local")
    assert plan.name == "PM-d2__lstm-chrono__s4"
    for expected in ("env.id=gatedrl/PassiveMatch-v0", "agent.core.cell=lstm", "agent.core.gate=chrono",
                     "run.seed=4", "run.name=PM-d2__lstm-chrono__s4", "run.log_dir=/x/runs",
                     "run.total_env_steps=300", "actors.unroll_length=6", "actors.backend=local",
                     "env.kwargs.delay=2", "agent.core.options.t_max=6"):  # fmt: skip
        assert expected in items
    ur = suite.overrides(suite.RunPlan(plan.task, "lstm/ur", 0), Path("r"), "ray")
    assert not any("t_max" in item for item in ur) and "actors.backend=ray" in ur
    extra = suite.overrides(plan, Path("r"), "local", ("learner.num_gpus=1", "agent.core.gate=ur"))
    assert extra[-2:] == ["learner.num_gpus=1", "agent.core.gate=ur"]  # last, so they win


def test_run_status_and_resume_command(tmp_path):
    preset = tiny_preset()
    plan = suite.RunPlan(preset.tasks[0], "lstm/ur", 0)
    run_dir = tmp_path / "runs" / plan.name
    assert suite.run_status(run_dir, 300) == "missing"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"env_steps": 200, "stopped_early": True}))
    assert suite.run_status(run_dir, 300) == "partial"
    (run_dir / "summary.json").write_text(json.dumps({"env_steps": 320, "stopped_early": False}))
    assert suite.run_status(run_dir, 300) == "done"
    # A started run without a checkpoint starts again; with one it is resumed.
    (run_dir / "summary.json").unlink()
    cmd = suite.command(plan, preset, tmp_path, None)
    assert "--config" in cmd and not run_dir.exists()
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-000000000100.pt").write_bytes(b"")
    cmd = suite.command(plan, preset, tmp_path, "auto")
    assert cmd[2:6] == ["--address", "auto", "--resume", str(run_dir)]


def test_presets_are_valid_configs():
    from configs import load_config

    for name, preset in suite.PRESETS.items():
        assert len(preset.seeds) >= 3, name
        for task in preset.tasks:
            plan = suite.RunPlan(task, "lstm/chrono", 0)
            config = load_config(preset.config, suite.overrides(plan, Path("runs"), preset.backend))
            assert config.env.id == task.env_id and config.actors.unroll_length == task.unroll_length


def test_select_tasks_names_delays_and_budget():
    cpu = suite.PRESETS["cpu"]
    assert suite.select_tasks(cpu, None, None, None) == cpu.tasks
    [d30] = suite.select_tasks(cpu, ["PassiveMatch-d30"], None, None)
    assert d30 == cpu.tasks[1]
    # New delays get the preset's unroll rule (the whole episode in one unroll) and its largest budget.
    d50, d10 = suite.select_tasks(cpu, None, [50, 10], None)
    assert (d50.name, d50.kwargs["delay"], d50.unroll_length, d50.episode_length) == ("PassiveMatch-d50", 50, 60, 54)
    assert d50.total_env_steps == max(t.total_env_steps for t in cpu.tasks) and d10 == cpu.tasks[0]
    both = suite.select_tasks(cpu, ["PassiveMatch-d10"], [10, 100], 5_000)
    assert [t.name for t in both] == ["PassiveMatch-d10", "PassiveMatch-d100"]
    assert all(t.total_env_steps == 5_000 for t in both) and both[1].unroll_length == 110
    assert suite.select_tasks(suite.PRESETS["full"], None, [300], None)[0].unroll_length == 600
    with pytest.raises(ValueError, match="unknown task 'PassiveMatch-d20'.*PassiveMatch-d10, PassiveMatch-d30"):
        suite.select_tasks(cpu, ["PassiveMatch-d20"], None, None)


def test_command_line_rejects_a_budget_it_could_not_track(capsys):
    with pytest.raises(SystemExit):
        suite.parse_args(["--set", "run.total_env_steps=10"])
    assert "--steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.parse_args(["--tasks", "nope"])
    assert "unknown task 'nope'" in capsys.readouterr().err
    args = suite.parse_args(["--delays", "40", "--steps", "1000", "--cells", "lstm/ur"])
    assert [(t.name, t.total_env_steps) for t in args.task_list] == [("PassiveMatch-d40", 1000)]


@pytest.mark.slow
def test_tiny_suite_runs_reports_and_resumes(tmp_path, capsys):
    preset = tiny_preset()
    plans = suite.make_plans(preset.tasks, list(suite.DEFAULT_CELLS), preset.seeds)
    assert len(plans) == 4
    statuses = suite.run_suite(plans, preset, tmp_path, jobs=4, address=None)
    assert statuses == ["done"] * 4, [p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*.log")]
    table = suite.report(plans, tmp_path)
    assert table.count("\n") == 2 + 4
    for cell in suite.DEFAULT_CELLS:
        assert f"| PM-d2 | {cell} | 1 (1) |" in table
    assert (tmp_path / "PM-d2.png").stat().st_size > 0
    runs_csv = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(runs_csv) == 5 and all(",done," in line for line in runs_csv[1:])
    steps, returns = suite.read_curve(tmp_path / "runs" / plans[0].name)
    assert steps.size >= 1 and steps.size == returns.size and np.all(np.diff(steps) > 0)
    # Started again: every run is finished, so nothing runs.
    assert suite.run_suite(plans, preset, tmp_path, jobs=4, address=None) == ["skipped"] * 4
