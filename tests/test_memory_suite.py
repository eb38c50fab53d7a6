"""The RL memory suite: metrics against plain loops, run bookkeeping, and a tiny real suite
(one very short ``run_impala.py`` run per cell, local actors) that produces its table and figure
and is skipped when started again. Nothing here asserts which cell learns best."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import memory_suite as suite
from benchmarks import suite_grid as grid


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
    task = grid.Task("PM-d2", "gatedrl/PassiveMatch-v0", 1.1, 6, 300, 6, {"delay": 2})
    return suite.Preset(suite.ROOT / "configs" / "suite_cpu.yaml", (task,), (0,), "local", grid.cpu_unroll)


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


def test_a_tasks_own_overrides_come_before_the_settings_and_extra():
    task = dataclasses.replace(tiny_preset().tasks[0], overrides=("agent.prev_action_reward=false",))
    items = suite.overrides(suite.RunPlan(task, "lstm/ur", 0), Path("r"), "local", ("agent.prev_action_reward=true",))
    assert items.index("agent.prev_action_reward=false") < items.index("agent.prev_action_reward=true")
    assert "agent.prev_action_reward=false" not in suite.overrides(suite.RunPlan(tiny_preset().tasks[0], "lstm/ur", 0),
                                                                  Path("r"), "local")  # fmt: skip


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
            for cell in preset.cells:
                plan = suite.RunPlan(task, cell, 0)
                config = load_config(preset.config, suite.overrides(plan, Path("runs"), preset.backend))
                assert config.env.id == task.env_id and config.actors.unroll_length == task.unroll_length
                assert f"{config.agent.core.cell}/{config.agent.core.gate}" == cell.removesuffix("-short")


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


def test_select_tasks_adds_active_match_delays_with_the_unroll_of_an_episode_as_long():
    long = suite.PRESETS["long"]
    [a20] = suite.select_tasks(long, None, None, 3_000_000, [20])
    # ActiveMatch's episode at delay 20: 9 cue-phase moves + 20 + 1 choice = 30 steps; two episodes per unroll.
    assert (a20.name, a20.env_id, a20.kwargs["delay"]) == ("ActiveMatch-d20", "gatedrl/ActiveMatch-v0", 20)
    assert (a20.episode_length, a20.unroll_length, a20.total_env_steps) == (30, 60, 3_000_000)
    assert a20.max_return == pytest.approx(2.0)
    # A delay the preset has keeps the preset's task (its budget); both kinds can be asked for at once.
    tasks = suite.select_tasks(long, None, [50], None, [100])
    assert [t.name for t in tasks] == ["PassiveMatch-d50", "ActiveMatch-d100"]
    assert tasks[1] == next(t for t in long.tasks if t.name == "ActiveMatch-d100")
    assert tasks[1].unroll_length == 220 and tasks[0].unroll_length == 110
    args = suite.parse_args(["--preset", "long", "--active-delays", "20", "--steps", "1000", "--cells", "lstm/ur"])
    assert [(t.name, t.unroll_length) for t in args.task_list] == [("ActiveMatch-d20", 60)]


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
    plans = suite.make_plans(preset.tasks, list(grid.DEFAULT_CELLS), preset.seeds)
    assert len(plans) == 4
    # Gate histograms at every update, so that the timescale section reads real ones.
    statuses = suite.run_suite(plans, preset, tmp_path, jobs=4, address=None, extra=("run.gate_stats_every_updates=1",))
    assert statuses == ["done"] * 4, [p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*.log")]
    table = suite.report(plans, tmp_path, reps=200)
    assert table.count("\n") == 2 + 4
    for cell in grid.DEFAULT_CELLS:
        assert f"| PM-d2 | {cell} | 1 (1) |" in table
    assert (tmp_path / "PM-d2.png").stat().st_size > 0
    runs_csv = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(runs_csv) == 5 and all(",done," in line for line in runs_csv[1:])
    steps, returns = suite.read_curve(tmp_path / "runs" / plans[0].name)
    assert steps.size >= 1 and steps.size == returns.size and np.all(np.diff(steps) > 0)
    rows = {r["cell"]: r for r in (suite.run_metrics(p, tmp_path) for p in plans)}
    assert rows["none/standard"]["timescales"] is None and all(r["wall_time_s"] > 0 for r in rows.values())
    ur = rows["lstm/ur"]["timescales"]
    assert ur.first.step < ur.last.step and ur.first.counts.sum() > 0
    statistics = (tmp_path / "statistics.md").read_text()
    assert "| PM-d2 | P(lstm/ur > lstm/standard) | 1 vs 1 |" in statistics
    assert (tmp_path / "profiles.png").exists() and (tmp_path / "timescales_PM-d2.png").exists()
    # Started again: every run is finished, so nothing runs.
    assert suite.run_suite(plans, preset, tmp_path, jobs=4, address=None) == ["skipped"] * 4


def test_the_long_grid_is_the_issues():
    long = suite.PRESETS["long"]
    assert [t.name for t in long.tasks] == ["PassiveMatch-d100", "PassiveMatch-d200", "PassiveMatch-d500",
                                            "ActiveMatch-d100", "ActiveMatch-d200"]  # fmt: skip
    assert set(long.cells) == {"lstm/standard", "lstm/chrono", "lstm/chrono-short", "lstm/ur", "gru/ur",
                               "gru/standard", "none/standard"}  # fmt: skip
    assert long.seeds == (0, 1, 2, 3, 4)
    for task in long.tasks:
        assert task.total_env_steps == grid.LONG_BUDGETS[task.name]
        # Two episodes per unroll: about half of them lie inside one unroll.
        assert 2 * task.episode_length <= task.unroll_length < 2 * task.episode_length + 10
    active = long.tasks[3]
    assert (active.env_id, active.kwargs, active.episode_length) == ("gatedrl/ActiveMatch-v0",
                                                                      {"delay": 100, "choice": "colour"}, 110)  # fmt: skip


def test_chrono_short_is_told_a_tenth_of_the_horizon():
    d100, d500 = suite.PRESETS["long"].tasks[0], suite.PRESETS["long"].tasks[2]
    assert suite.core_overrides("lstm/chrono", d100) == ["agent.core.cell=lstm", "agent.core.gate=chrono",
                                                         "agent.core.options.t_max=104"]  # fmt: skip
    assert suite.core_overrides("lstm/chrono-short", d100)[-1] == "agent.core.options.t_max=10"
    assert suite.core_overrides("lstm/chrono-short", d500)[-1] == "agent.core.options.t_max=50"
    assert suite.core_overrides("gru/ur", d100) == ["agent.core.cell=gru", "agent.core.gate=ur"]
    plan = suite.RunPlan(d100, "lstm/chrono-short", 3)
    assert plan.name == "PassiveMatch-d100__lstm-chrono-short__s3"
    for bad in ("lstm", "lstm/ur-short", "lstm/chrono-long", "/ur"):
        with pytest.raises(ValueError, match="expected cell/gate"):
            suite.core_overrides(bad, d100)


def test_settings_fill_in_the_task_and_name_the_runs():
    task = suite.PRESETS["long"].tasks[0]
    context = suite.parse_setting("actors.context_length={episode_length}")
    assert suite.parse_setting("base") == grid.BASE
    base, with_context = (suite.RunPlan(task, "lstm/ur", 0, s) for s in (grid.BASE, context))
    assert base.name == "PassiveMatch-d100__lstm-ur__s0"  # the folders of earlier suites keep their names
    assert with_context.name == "PassiveMatch-d100__lstm-ur__context_length-episode_length__s0"
    assert with_context.label == "lstm/ur [actors.context_length={episode_length}]"
    items = suite.overrides(with_context, Path("r"), "ray", ("learner.num_gpus=1",))
    assert items[-2:] == ["actors.context_length=104", "learner.num_gpus=1"]
    two = suite.parse_setting("actors.context_length={delay}, learner.entropy_cost=0.02")
    assert two.slug == "context_length-delay+entropy_cost-0.02"
    assert suite.overrides(suite.RunPlan(task, "lstm/ur", 0, two), Path("r"), "ray")[-2:] == [
        "actors.context_length=100", "learner.entropy_cost=0.02"]  # fmt: skip
    for bad in ("", "actors.context_length", "run.total_env_steps=5"):
        with pytest.raises(ValueError, match="setting"):
            suite.parse_setting(bad)
    plans = suite.make_plans((task,), ["lstm/ur", "lstm/standard"], [0, 1], (grid.BASE, context))
    assert len(plans) == len({p.name for p in plans}) == 8
    assert [p.seed for p in plans[:4]] == [0, 0, 0, 0]  # seeds outermost


def grid_budgets() -> dict[str, int]:
    return {t.name: t.total_env_steps for t in suite.PRESETS["long"].tasks}


def test_one_cell_of_the_grid_is_one_command(tmp_path):
    args = suite.parse_args(["--preset", "long", "--delays", "100", "--cells", "lstm/ur", "--seeds", "0",
                             "--settings", "base", "actors.context_length={episode_length}", "--out", str(tmp_path)])  # fmt: skip
    plans = suite.make_plans(args.task_list, args.cells, args.seeds, args.setting_list)
    assert [p.name for p in plans] == ["PassiveMatch-d100__lstm-ur__s0",
                                       "PassiveMatch-d100__lstm-ur__context_length-episode_length__s0"]  # fmt: skip
    cmd = suite.command(plans[1], suite.PRESETS["long"], tmp_path, None)
    assert cmd[2:4] == ["--config", str(suite.ROOT / "configs" / "suite_long.yaml")]
    for item in ("env.id=gatedrl/PassiveMatch-v0", "env.kwargs.delay=100", "agent.core.gate=ur", "run.seed=0",
                 "run.total_env_steps=8000000", "actors.unroll_length=210", "actors.context_length=104",
                 f"run.log_dir={tmp_path / 'runs'}", "actors.backend=ray"):  # fmt: skip
        assert item in cmd
    # The whole grid by default; a budget changed for one task only.
    grid = suite.parse_args(["--preset", "long", "--budget", "PassiveMatch-d500=20000000"])
    plans = suite.make_plans(grid.task_list, grid.cells, suite.PRESETS["long"].seeds, grid.setting_list)
    assert len(plans) == 5 * 7 * 5
    budgets = {t.name: t.total_env_steps for t in grid.task_list}
    assert budgets["PassiveMatch-d500"] == 20_000_000
    assert budgets["PassiveMatch-d200"] == grid_budgets()["PassiveMatch-d200"]  # the others keep the preset's


def test_the_command_line_refuses_unknown_cells_budgets_and_settings(capsys):
    for argv, message in ((["--cells", "lstm/ur-short"], "expected cell/gate"),
                          (["--budget", "PassiveMatch-d77=10"], "--budget"),
                          (["--budget", "PassiveMatch-d10=many"], "--budget"),
                          (["--settings", "run.seed=3"], "setting")):  # fmt: skip
        with pytest.raises(SystemExit):
            suite.parse_args(argv)
        assert message in capsys.readouterr().err


def test_list_shows_what_is_left(tmp_path, capsys):
    assert suite.main(["--preset", "long", "--tasks", "ActiveMatch-d100", "--cells", "lstm/ur", "gru/ur",
                       "--seeds", "0", "--out", str(tmp_path), "--list"]) == 0  # fmt: skip
    done = tmp_path / "runs" / "ActiveMatch-d100__gru-ur__s0"
    done.mkdir(parents=True)
    budget = grid_budgets()["ActiveMatch-d100"]
    (done / "summary.json").write_text(json.dumps({"env_steps": budget}))
    capsys.readouterr()
    suite.main(["--preset", "long", "--tasks", "ActiveMatch-d100", "--cells", "lstm/ur", "gru/ur",
                "--seeds", "0", "--out", str(tmp_path), "--list"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"ActiveMatch-d100__lstm-ur__s0  missing  {budget:,} steps  unroll 220")
    assert lines[1].startswith("ActiveMatch-d100__gru-ur__s0  done")
    assert lines[2] == f"ActiveMatch-d100: at most {budget:,} env steps to run"
    assert not (tmp_path / "logs").exists()  # nothing was run


def test_success_threshold_is_a_score_not_a_fraction_of_the_maximum():
    # Delay 100: the apples alone earn 5 of the maximum 6; every apple and a 1-in-4 guess earns 5.25,
    # which is already above 0.9 x 6 = 5.4 minus noise. Solved must mean using the cue.
    task = grid.passive_match(100, steps=1000, unroll=210)
    assert task.max_return == pytest.approx(6.0) and task.score_floor == pytest.approx(5.25)
    assert task.success_threshold(0.9) == pytest.approx(5.25 + 0.9 * 0.75)
    assert task.score(task.success_threshold(0.9)) == pytest.approx(0.9)
    steps, returns = np.array([1.0, 2.0, 3.0]), np.array([5.3, 5.5, 5.6])  # above 0.9 x max, below score 0.9
    assert suite.steps_to_threshold(steps, returns, task.success_threshold(suite.SUCCESS_FRACTION)) is None
