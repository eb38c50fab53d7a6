"""The learning benchmark: its figures against plain loops (threshold steps and seconds, best/final,
MMER's mean and std), wall-clock read back from hand-written event files (a resumed run's pause not
counted), the generated doc block, one-line CLI errors, and one tiny real run through the CLI."""

from __future__ import annotations

import json
import os
import statistics

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from benchmarks import learning
from benchmarks.memory_suite import RunPlan
from learner.metrics import EPISODE_RETURN, EPISODES_ENDED
from learner.plots import read_scalars

TAG = learning.EPISODE_RETURN_MEAN100


def write_events(path, start: float, points: list[tuple[int, float, float]], tag: str = TAG) -> None:
    """An event file whose first event is at ``start`` and then ``(step, value, wall_time)`` scalars of ``tag``."""
    with path.open("wb") as file:
        writer = RecordWriter(file)
        writer.write(event_pb2.Event(wall_time=start, file_version="brain.Event:2").SerializeToString())
        for step, value, wall_time in points:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
            writer.write(event_pb2.Event(wall_time=wall_time, step=step, summary=summary).SerializeToString())


def test_first_at_or_above_matches_a_loop():
    rng = np.random.default_rng(1)
    for _ in range(20):
        values = rng.normal(size=rng.integers(1, 30))
        threshold = float(rng.normal())
        expected = next((i for i, v in enumerate(values) if v >= threshold), None)
        assert learning.first_at_or_above(values, threshold) == expected
    assert learning.first_at_or_above(np.array([1.0, 2.0, 2.0]), 2.0) == 1  # reaching it counts
    assert learning.first_at_or_above(np.zeros(0), 0.0) is None


def test_held_from_and_lowest_after_match_loops():
    rng = np.random.default_rng(2)
    for _ in range(50):
        values = rng.normal(size=rng.integers(1, 30))
        threshold = float(rng.normal())
        held = next((i for i in range(len(values)) if all(v >= threshold for v in values[i:])), None)
        assert learning.held_from(values, threshold) == held
        first = next((i for i, v in enumerate(values) if v >= threshold), None)
        expected = None if first is None else min(values[first:])
        assert learning.lowest_after(values, threshold) == expected
    # Reached at 1, fell to 0.2, back from 3 to the end: held from 3, lowest after reaching 0.2.
    dip = np.array([0.1, 0.95, 0.2, 0.9, 0.97])
    assert (learning.held_from(dip, 0.9), learning.lowest_after(dip, 0.9)) == (3, 0.2)
    assert learning.held_from(np.array([0.95, 0.5]), 0.9) is None and learning.lowest_after(np.zeros(3), 0.9) is None


def test_mean_std_is_the_sample_std():
    assert learning.mean_std([0.2, None, 0.6, 0.7]) == pytest.approx((0.5, statistics.stdev([0.2, 0.6, 0.7])))
    assert learning.mean_std([0.3]) == (0.3, None)
    assert learning.mean_std([None]) == (None, None)


def test_read_elapsed_lays_a_resumed_runs_files_end_to_end(tmp_path):
    first, second = tmp_path / "events.out.tfevents.1.a", tmp_path / "events.out.tfevents.2.b"
    write_events(first, 1000.0, [(100, 0.1, 1010.0), (200, 0.2, 1030.0)])
    # Resumed 5000 s later: the pause is not training time; step 200 logged again, the later file wins.
    write_events(second, 6000.0, [(200, 0.25, 6004.0), (300, 0.3, 6010.0)])
    os.utime(first, (1, 1))
    os.utime(second, (2, 2))
    assert learning.read_elapsed(tmp_path, TAG) == pytest.approx({100: 10.0, 200: 34.0, 300: 40.0})
    assert learning.read_elapsed(tmp_path, "charts/other") == {}


def fake_run(out_dir, plan, points, env_steps):
    run_dir = out_dir / "runs" / plan.name
    run_dir.mkdir(parents=True)
    write_events(run_dir / "events.out.tfevents.1.x", 500.0, points)
    (run_dir / "summary.json").write_text(json.dumps({"env_steps": env_steps, "wall_time_s": 99.0}))


def test_run_rows_threshold_final_best_and_table(tmp_path):
    bench = learning.with_budget(learning.KNOWN["CartPole-v1"], 400)
    ur, none = RunPlan(bench.task, "lstm/ur", 0), RunPlan(bench.task, "none/standard", 0)
    fake_run(tmp_path, ur, [(100, 20.0, 510.0), (200, 480.0, 530.0), (300, 470.0, 545.0), (400, 490.0, 560.0)], 400)
    # Reached 475 at 200, dipped to 470 at 300, above it again from 400 to the end.
    fake_run(tmp_path, none, [(100, 30.0, 505.0), (200, 60.0, 512.0)], 200)
    row = learning.run_row(bench, ur, tmp_path)
    assert (row["status"], row["steps_to_threshold"], row["seconds_to_threshold"]) == ("done", 200.0, 30.0)
    assert (row["final"], row["best"], row["train_seconds"], row["wall_time_s"]) == (490.0, 490.0, 60.0, 99.0)
    assert (row["held_from"], row["lowest_after"]) == (400.0, 470.0)
    other = learning.run_row(bench, none, tmp_path)
    assert other["status"] == "partial" and other["steps_to_threshold"] is None and other["best"] == 60.0
    assert learning.run_row(bench, RunPlan(bench.task, "lstm/ur", 7), tmp_path) is None
    table = learning.cell_rows([row, other])
    assert table[0][:6] == ["CartPole-v1", "lstm/ur", "1 (1)", "1/1", 200.0, 30.0]
    assert table[1][:6] == ["CartPole-v1", "none/standard", "1 (0)", "0/1", None, None]
    assert table[0][12:] == ["1/1", 400.0, 470.0] and table[1][12:] == ["0/1", None, None]
    assert learning.display([*table[0][:13], 1234567.0, 470.0])[12:] == ["1/1", "1,234,567", 470.0]
    assert learning.display([*table[0][:4], 1234567.0, 29.6, *table[0][6:]])[4:6] == ["1,234,567", "30"]
    assert learning.display(table[1])[4:6] == ["–", "–"]
    popgym = learning.KNOWN["RepeatPreviousEasy"]
    runs = [{"task": "RepeatPreviousEasy", "cell": "lstm/ur", "best": b, "best_iteration": i}
            for b, i in ((0.9, 0.8), (0.7, None), (0.8, 0.6))]  # fmt: skip
    ours, *published = learning.published_rows(popgym, runs)
    assert ours == ["ours: lstm/ur", "0.8 ± 0.1", f"0.7 ± {statistics.stdev([0.8, 0.6]):.4g}", "2M steps, IMPALA",
                    "this benchmark"]  # fmt: skip
    assert published and all(p[1] == "–" and p[2] == "not confirmed" and "15M" in p[3] for p in published)


def test_iteration_means_match_a_loop_over_episodes():
    """POPGym's MMER point: the mean of every episode that ended in one complete iteration, from per-update
    means and counts; equal weights when the counts are unknown; the incomplete last iteration left out."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        iteration, batch = int(rng.integers(3, 9)) * 10, 10
        steps = np.arange(batch, int(rng.integers(1, 12)) * batch * 5 + 1, batch)
        steps = steps[rng.random(steps.size) < 0.8]  # updates that ended no episode log nothing
        counts = rng.integers(1, 5, size=steps.size).astype(float)
        episodes = [list(rng.normal(size=int(c))) for c in counts]
        means = np.array([np.mean(e) for e in episodes])
        expected, flat = [], []
        for k in range(int(steps.max()) // iteration if steps.size else 0):
            ended = [
                r for s, e in zip(steps, episodes, strict=True) if k * iteration < s <= (k + 1) * iteration for r in e
            ]
            same = [m for s, m in zip(steps, means, strict=True) if k * iteration < s <= (k + 1) * iteration]
            if ended:
                expected.append(np.mean(ended))
                flat.append(np.mean(same))
        assert learning.iteration_means(steps, means, counts, iteration) == pytest.approx(expected)
        assert learning.iteration_means(steps, means, None, iteration) == pytest.approx(flat)
    assert learning.iteration_means(np.array([10.0, 20.0]), np.array([1.0, 2.0]), None, 30).size == 0
    assert learning.iteration_means(np.zeros(0), np.zeros(0), None, 30).size == 0


def test_a_run_row_reads_popgyms_mmer_from_the_per_update_returns(tmp_path):
    bench = learning.with_budget(learning.KNOWN["CountRecallEasy"], 3 * learning.POPGYM_ITERATION_STEPS)
    plan = RunPlan(bench.task, "lstm/ur", 0)
    fake_run(tmp_path, plan, [(1000, 0.5, 510.0), (150_000, 0.75, 530.0)], bench.task.total_env_steps)
    run_dir = tmp_path / "runs" / plan.name
    n = learning.POPGYM_ITERATION_STEPS
    # Iteration 0: 3 episodes at 0.0 and 1 at 0.4 (mean 0.1); iteration 1: 0.3 and 0.5 once each (0.4);
    # the last point lies in the incomplete third iteration and is left out.
    updates = [(n // 2, 0.0, 3), (n, 0.4, 1), (n + 10, 0.3, 1), (2 * n, 0.5, 1), (2 * n + 10, 0.9, 5)]
    write_events(run_dir / "events.out.tfevents.2.y", 500.0, [(s, r, 520.0) for s, r, _ in updates], EPISODE_RETURN)
    write_events(run_dir / "events.out.tfevents.3.z", 500.0, [(s, c, 520.0) for s, _, c in updates], EPISODES_ENDED)
    row = learning.run_row(bench, plan, tmp_path)
    assert row["best"] == 0.75 and row["best_iteration"] == pytest.approx(0.4)
    # CartPole's episodes vary in length: no POPGym figure to compare, none computed.
    assert learning.run_row(learning.KNOWN["CartPole-v1"], plan, tmp_path)["best_iteration"] is None


def cartpole_runs(out_dir):
    """Two fake CartPole-v1 runs at a 400-step budget (UR reaches 475, the control does not)."""
    bench = learning.with_budget(learning.KNOWN["CartPole-v1"], 400)
    ur, none = RunPlan(bench.task, "lstm/ur", 0), RunPlan(bench.task, "none/standard", 0)
    fake_run(out_dir, ur, [(100, 20.0, 510.0), (200, 480.0, 530.0), (300, 470.0, 545.0), (400, 490.0, 560.0)], 400)
    fake_run(out_dir, none, [(100, 30.0, 505.0), (200, 60.0, 512.0)], 400)
    return bench, [ur, none]


def test_a_task_is_reported_from_its_versioned_runs_csv(tmp_path):
    """Report, keep runs.csv, lose one run folder: its row comes back from the archive unchanged, the
    tables are the same, and the block says how many runs have no curve."""
    bench, plans = cartpole_runs(tmp_path / "first")
    learning.report([bench], plans, tmp_path / "first", tmp_path / "first" / "LEARNING.md")
    archive_path = tmp_path / "scores.csv"
    archive_path.write_text((tmp_path / "first" / "runs.csv").read_text())
    (tmp_path / "second" / "runs").mkdir(parents=True)
    (tmp_path / "first" / "runs" / plans[1].name).rename(tmp_path / "second" / "runs" / plans[1].name)

    archive = learning.read_scores([archive_path])
    row = learning.archived_run_row(bench, plans[0], archive)
    assert (row["steps_to_threshold"], row["held_from"], row["lowest_after"], row["best"]) == (
        200.0,
        400.0,
        470.0,
        490.0,
    )
    assert row["env_steps"] == 400 and row["status"] == "done" and row["curve"][0].size == 0
    doc = tmp_path / "second" / "LEARNING.md"
    learning.report([bench], plans, tmp_path / "second", doc, archive)
    for name in ("runs.csv", "cells.csv"):
        assert (tmp_path / "second" / name).read_text() == (tmp_path / "first" / name).read_text()
    block = doc.read_text()
    assert "Read from a versioned runs.csv" in block and "1 of these runs" in block and "![CartPole-v1]" in block
    # Only archived runs: the tables, no figure line.
    learning.report([bench], plans[:1], tmp_path / "third", tmp_path / "third" / "LEARNING.md", archive)
    assert "| lstm/ur | 1 (1) | 1/1 |" in (tmp_path / "third" / "LEARNING.md").read_text()
    assert "![CartPole-v1]" not in (tmp_path / "third" / "LEARNING.md").read_text()


def test_an_archived_row_that_does_not_fit_the_task_is_refused(tmp_path):
    bench, plans = cartpole_runs(tmp_path)
    learning.report([bench], plans, tmp_path, None)
    archive = learning.read_scores([tmp_path / "runs.csv"])
    other_threshold = learning.replace(bench, threshold=450.0)
    with pytest.raises(ValueError, match="archived with threshold 475, the task's is 450"):
        learning.archived_run_row(other_threshold, plans[0], archive)
    with pytest.raises(ValueError, match="archived at 400 env steps, more than the budget 300; .*--steps"):
        learning.archived_run_row(learning.with_budget(bench, 300), plans[0], archive)
    assert learning.archived_run_row(bench, RunPlan(bench.task, "lstm/ur", 5), archive) is None
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("task,cell,seed,status,final\nCartPole-v1,lstm/ur,0,done,1.0\n")
    with pytest.raises(ValueError, match="wrong.csv: not a learning-benchmark runs.csv .*threshold"):
        learning.read_scores([wrong])


def test_archived_runs_are_not_run_again(tmp_path, monkeypatch, capsys):
    bench, plans = cartpole_runs(tmp_path / "first")
    learning.report([bench], plans, tmp_path / "first", None)
    rows = (tmp_path / "first" / "runs.csv").read_text().splitlines()
    archive_path = tmp_path / "scores.csv"
    archive_path.write_text("\n".join(r for r in rows if ",none/standard," not in r) + "\n")
    ran = []
    monkeypatch.setattr(learning, "run_suite", lambda plans, *args: ran.extend(plans) or ["started"] * len(plans))
    monkeypatch.setattr(learning, "report", lambda *args: "")
    argv = ["--tasks", "CartPole-v1", "--cells", "lstm/ur", "none/standard", "--seeds", "0", "--steps", "400",
            "--out", str(tmp_path / "second"), "--doc", "", "--scores-from", str(archive_path)]  # fmt: skip
    assert learning.main(argv) == 0
    assert [(p.cell, p.seed) for p in ran] == [("none/standard", 0)]
    assert "1 archived, 2 planned" in capsys.readouterr().out
    # The mismatch is found before anything runs, as a one-line command-line error.
    with pytest.raises(SystemExit):
        learning.parse_args(
            [*argv[:-6], "--steps", "300", "--out", str(tmp_path / "third"), "--scores-from", str(archive_path)]
        )
    assert "more than the budget 300" in capsys.readouterr().err.strip().splitlines()[-1]


def test_refresh_doc_replaces_its_blocks_and_keeps_the_rest(tmp_path):
    doc = tmp_path / "LEARNING.md"
    doc.write_text("# Title\n\nHand-written context.\n")
    learning.refresh_doc(doc, {"A": "block A v1", "B": "block B v1"})
    learning.refresh_doc(doc, {"A": "block A v2"})
    text = doc.read_text()
    assert text.startswith("# Title\n\nHand-written context.\n")
    assert "block A v2" in text and "block A v1" not in text and "block B v1" in text
    assert text.index("block A v2") < text.index("block B v1") and text.count("learning:begin A") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "Pong"], "unknown task 'Pong'"),
        (["--cells", "lstm"], "cell 'lstm' must look like cell/gate"),
        (["--cells", "lstm/urr"], "agent.core.gate"),
        (["--set", "learner.learning_rat=1"], "learner.learning_rat"),
        (["--set", "run.total_env_steps=5"], "--steps"),
        (["--steps", "0"], "--steps 0 must be positive"),
    ],
)
def test_command_line_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit):
        learning.parse_args(["--tasks", "CartPole-v1", *argv] if argv[0] != "--tasks" else argv)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error


def test_every_task_builds_its_environment_with_its_preset():
    from configs import load_config
    from envs.factory import validate_env_config

    for bench in learning.BENCHMARKS:
        assert bench.task.config.exists(), bench.task.config
        config = load_config(bench.task.config, [f"env.id={bench.task.env_id}", *bench.task.overrides])
        validate_env_config(config.env)
        assert config.actors.unroll_length == bench.task.unroll_length


def test_repeat_first_hides_the_previous_action_that_would_answer_it():
    """RepeatFirst's card is in view at the first answer: with the previous action as an input a memoryless
    agent solves it by repeating itself, so the benchmark's runs of it must not see that input."""
    from configs import load_config

    for bench in learning.BENCHMARKS:
        config = load_config(bench.task.config, [f"env.id={bench.task.env_id}", *bench.task.overrides])
        assert config.agent.prev_action_reward is ("RepeatFirst" not in bench.task.name), bench.task.name


@pytest.mark.slow
def test_tiny_benchmark_through_the_command_line(tmp_path, capsys):
    doc = tmp_path / "docs" / "LEARNING.md"
    # 4 800 steps: the 100-episode mean is logged once 100 episodes have ended (~2 200 steps at random play).
    argv = ["--tasks", "CartPole-v1", "--cells", "lstm/ur", "--seeds", "0", "--steps", "4800",
            "--set", "actors.backend=local", "--out", str(tmp_path / "out"), "--doc", str(doc)]  # fmt: skip
    assert learning.main(argv) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1__lstm-ur__s0: done" in out and "| CartPole-v1 | lstm/ur | 1 (1) |" in out
    runs = (tmp_path / "out" / "runs.csv").read_text().splitlines()
    assert len(runs) == 2 and ",done,4800," in runs[1]
    # The 100-episode mean starts once 100 episodes have ended, not at the first one (whose few-episode
    # means would count as a best or a threshold crossing), later than the per-update returns.
    scalars = read_scalars(tmp_path / "out" / "runs" / "CartPole-v1__lstm-ur__s0")
    first_return, first_mean = scalars[EPISODE_RETURN][0][0], scalars[TAG][0][0]
    assert first_mean > first_return >= 320 and first_mean >= 100 * 8  # >= 8 steps an episode: 100 take >= 800
    assert (doc.parent / "figures" / "learning_CartPole-v1.png").stat().st_size > 0
    text = doc.read_text()
    assert "<!-- learning:begin CartPole-v1 -->" in text and "--steps 4800" in text and "Budget 4,800 env steps" in text
    # Started again: nothing runs, and the provenance of the runs that made the figures is kept.
    assert learning.main(argv) == 0
    assert "1 skipped, 0 archived, 1 planned" in capsys.readouterr().out and "--steps 4800" in doc.read_text()
