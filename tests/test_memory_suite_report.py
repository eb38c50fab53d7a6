"""The memory suite's report from hand-written run folders: normalised scores, every started run counted
(a failed run without a summary, a run stopped early, one that logged nothing), IQM and probability of
improvement tables, performance profiles, timescales against the delay, and wall time over a resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from benchmarks import memory_suite as suite
from benchmarks import suite_archive, suite_report
from benchmarks import suite_grid as grid
from benchmarks.timescales import TIMESCALE_TAG

REPS = 300  # bootstrap resamples: enough for the tables' shape, fast


def scalar(tag, step, value, wall_time):
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def histogram(step, low, high, wall_time):
    """All activations' log10 timescales uniform on [low, high): one bucket."""
    proto = summary_pb2.HistogramProto(min=low, max=high, num=100, bucket_limit=[low, high], bucket=[0.0, 100.0])
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=TIMESCALE_TAG, histo=proto)])
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def write_events(path, start, events):
    with path.open("wb") as file:
        writer = RecordWriter(file)
        writer.write(event_pb2.Event(wall_time=start, file_version="brain.Event:2").SerializeToString())
        for event in events:
            writer.write(event.SerializeToString())


def fake_run(out_dir, plan, returns, *, summary=None, reach=None, start=1000.0, seconds_per_point=10.0):
    """A run folder: the return curve (one point per 100 steps), two timescale histograms (log10 timescale
    uniform on [0, 1) first, then on [0, reach) last), and ``summary`` as summary.json if given."""
    run_dir = out_dir / "runs" / plan.name
    run_dir.mkdir(parents=True)
    events = [
        scalar(suite.RETURN_TAG, 100 * (i + 1), r, start + seconds_per_point * (i + 1)) for i, r in enumerate(returns)
    ]
    if reach is not None:
        events += [histogram(100, 0.0, 1.0, start + 1), histogram(100 * len(returns), 0.0, reach, start + 2)]
    if events:
        write_events(run_dir / "events.out.tfevents.1.host", start, events)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def task():
    # Delay 10: memoryless best 0.75, maximum 1.5 (PassiveMatch's figures), so score = (R - 0.75) / 0.75.
    return grid.passive_match(10, 1000, 20)


def test_scores_are_normalised_between_the_memoryless_best_and_the_maximum():
    t = task()
    assert t.score_floor == 0.75 and t.delay == 10
    assert t.score(0.75) == 0.0 and t.score(1.5) == 1.0 and t.score(1.125) == pytest.approx(0.5)
    assert t.score(None) == 0.0  # a run that logged no return showed no memory
    active = grid.active_match(100, 1000, 220)
    assert (active.episode_length, active.max_return, active.score_floor) == (110, 6.0, 5.25)
    assert grid.popgym("RepeatPreviousEasy", 51, 10, 80).score_floor == -0.5


def build_suite(tmp_path):
    """Three cells x 3 seeds, each ending at a known return, and the odd runs the report must keep."""
    t = task()
    plans = suite.make_plans((t,), ["lstm/ur", "lstm/standard", "none/standard"], [0, 1, 2])
    finals = {"lstm/ur": [1.5, 1.45, 1.2], "lstm/standard": [1.0, None, None], "none/standard": [0.75, 0.7, 0.76]}
    reach = {"lstm/ur": 2.0, "lstm/standard": 1.0, "none/standard": None}  # log10 timescales, last histogram
    for plan in plans:
        final = finals[plan.cell][plan.seed]
        if plan.cell == "lstm/standard" and plan.seed == 2:
            # started, crashed before its first event: an empty folder
            (tmp_path / "runs" / plan.name).mkdir(parents=True)
            continue
        if plan.cell == "lstm/standard" and plan.seed == 1:  # killed before a checkpoint: no summary
            fake_run(tmp_path, plan, list(np.linspace(0.5, 1.0, 12)), reach=1.0)
            continue
        curve = [0.5, 0.5] + [final] * 10  # the 10-point mean ends at the final return
        stopped = plan.cell == "lstm/ur" and plan.seed == 2
        summary = {"env_steps": 600 if stopped else 1200, "mean_return": final, "stopped_early": stopped}
        fake_run(tmp_path, plan, curve, summary=summary, reach=reach[plan.cell])
    return plans


def test_report_keeps_every_started_run_and_writes_the_statistics(tmp_path):
    plans = build_suite(tmp_path)
    table = suite.report(plans, tmp_path, reps=REPS)
    assert "| PassiveMatch-d10 | lstm/standard | 3 (1) |" in table  # the empty and the summary-less runs count
    runs = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 9
    rows = [suite.run_metrics(p, tmp_path) for p in plans]
    by = {(r["cell"], r["seed"]): r for r in rows}
    assert by[("lstm/ur", 0)]["score"] == pytest.approx(1.0) and by[("lstm/ur", 0)]["solved"]
    assert by[("lstm/standard", 2)]["score"] == 0.0 and by[("lstm/standard", 2)]["status"] == "missing"
    # No summary: the mean of the last 10 logged returns.
    assert by[("lstm/standard", 1)]["final_return"] == pytest.approx(np.mean(np.linspace(0.5, 1.0, 12)[-10:]))
    assert by[("lstm/ur", 2)]["status"] == "partial" and by[("lstm/ur", 2)]["score"] == pytest.approx(0.6)
    assert by[("lstm/ur", 0)]["wall_time_s"] == pytest.approx(120.0)

    text = (tmp_path / "statistics.md").read_text()
    ur = stats_row(text, "| PassiveMatch-d10 | lstm/ur |")
    # IQM of 3 runs cuts none (floor(3/4) = 0): the mean of 1.0, 0.9333 and 0.6.
    assert ur[2] == "3" and float(ur[3]) == pytest.approx(np.mean([1.0, 0.7 / 0.75, 0.6]), abs=1e-3)
    assert float(ur[4]) <= float(ur[3]) <= float(ur[5])
    poi = stats_row(text, "| PassiveMatch-d10 | P(lstm/ur > lstm/standard) |")
    assert poi[2] == "3 vs 3" and float(poi[3]) == 1.0  # every UR run above every classic one
    classic = [by[("lstm/standard", seed)]["score"] for seed in range(3)]
    expected = np.mean([1.0, 0.7 / 0.75, 0.6]) - np.mean(classic)  # IQM of 3 runs: their mean
    assert float(poi[6]) == pytest.approx(expected, abs=1e-3) and float(poi[7]) <= float(poi[6]) <= float(poi[8])
    assert "P(lstm/ur > lstm/chrono)" not in text  # chrono was not planned
    sooner = stats_row(text, "| PassiveMatch-d10 | P(lstm/ur sooner than lstm/standard) |")
    ur_steps = [by[("lstm/ur", seed)]["steps_to_threshold"] for seed in range(3)]
    classic_steps = [by[("lstm/standard", seed)]["steps_to_threshold"] for seed in range(3)]
    solved = f"{sum(s is not None for s in ur_steps)} vs {sum(s is not None for s in classic_steps)}"
    assert sooner[2:4] == ["3 vs 3", solved]
    assert float(sooner[4]) == pytest.approx(sooner_reference(ur_steps, classic_steps), abs=1e-3)
    assert (tmp_path / "profiles.png").stat().st_size > 1000
    assert (tmp_path / "timescales_PassiveMatch-d10.png").stat().st_size > 1000


def stats_row(text, start):
    [line] = [line for line in text.splitlines() if line.startswith(start)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_timescales_are_compared_with_the_delay(tmp_path):
    plans = build_suite(tmp_path)
    rows = [r for r in (suite.run_metrics(p, tmp_path) for p in plans) if r is not None]
    table = suite_report.timescale_rows(rows, {"PassiveMatch-d10": 10})
    assert len(table) == 5  # UR x 3 and classic x 2; no gates in the control or the empty run
    ur0 = next(r for r in table if r[2] == "lstm/ur" and r[3] == 0)
    # First: uniform on [0, 1) in log10, none at or above log10(10) = 1. Last: uniform on [0, 2), half.
    assert (ur0[4], ur0[7], ur0[10]) == ("yes", 0.0, pytest.approx(0.5))
    assert ur0[11] == pytest.approx(10**1.8)  # the 90th percentile of the last, in steps
    [reach] = suite_report.reach_versus_success(rows, REPS)
    # Solved: UR seeds 0 and 1 (reach 0.5); unsolved: UR seed 2 (0.5) and two classic runs (reach 0).
    assert reach[1:5] == [2, 3, pytest.approx(0.5), pytest.approx(0.0)]
    assert reach[5] == pytest.approx(5 / 6)  # per solved run: a tie and two wins of 3 pairs
    assert reach[6] <= reach[5] <= reach[7]


def test_wall_time_is_added_over_a_resume(tmp_path):
    plan = suite.RunPlan(task(), "lstm/ur", 0)
    run_dir = fake_run(tmp_path, plan, [1.0, 1.1], summary={"env_steps": 1000, "mean_return": 1.1, "wall_time_s": 5.0})
    first = next(run_dir.glob("events.*"))
    os.utime(first, (1, 1))
    # Resumed an hour later: 30 s more of training; the pause is not counted.
    write_events(run_dir / "events.out.tfevents.2.host", 5000.0, [scalar(suite.RETURN_TAG, 300, 1.2, 5030.0)])
    assert suite.training_seconds(run_dir) == pytest.approx(20.0 + 30.0)
    [row] = suite_report.wall_time_rows([suite.run_metrics(plan, tmp_path)])
    assert row[:4] == ["PassiveMatch-d10", 1, 1, pytest.approx(50 / 3600)]
    assert suite.training_seconds(tmp_path / "none") is None


def test_cells_are_compared_within_a_setting_and_each_setting_against_the_base():
    t = task()
    context = suite.parse_setting("actors.context_length={episode_length}")
    plans = suite.make_plans((t,), ["lstm/ur", "lstm/standard", "lstm/chrono-short"], [0], (grid.BASE, context))
    pairs = suite.comparison_pairs(plans)
    window = " [actors.context_length={episode_length}]"
    assert pairs == [("lstm/ur", "lstm/standard"), ("lstm/ur", "lstm/chrono-short"),
                     ("lstm/ur" + window, "lstm/standard" + window),
                     ("lstm/ur" + window, "lstm/chrono-short" + window),
                     ("lstm/ur" + window, "lstm/ur"), ("lstm/standard" + window, "lstm/standard"),
                     ("lstm/chrono-short" + window, "lstm/chrono-short")]  # fmt: skip
    # A cell planned in one setting only has nothing to be compared with across settings.
    only_window = suite.make_plans((t,), ["lstm/ur", "lstm/standard"], [0], (context,))
    assert suite.comparison_pairs(only_window) == [("lstm/ur" + window, "lstm/standard" + window)]


def test_the_ablation_of_ur_is_compared_part_by_part():
    """UR against U, R and the tied update alone, U and R each against the tied update, and the tied
    update against the classic LSTM, in the order of COMPARISONS; a part that is not planned is not
    compared."""
    t = task()
    cells = ["lstm/standard", "lstm/tied", "lstm/u", "lstm/r", "lstm/ur"]
    pairs = suite.comparison_pairs(suite.make_plans((t,), cells, [0], (grid.BASE,)))
    assert pairs == [("lstm/ur", "lstm/standard"), ("lstm/ur", "lstm/u"), ("lstm/ur", "lstm/r"),
                     ("lstm/ur", "lstm/tied"), ("lstm/u", "lstm/tied"), ("lstm/r", "lstm/tied"),
                     ("lstm/tied", "lstm/standard")]  # fmt: skip
    without_r = suite.make_plans((t,), ["lstm/ur", "lstm/u"], [0], (grid.BASE,))
    assert suite.comparison_pairs(without_r) == [("lstm/ur", "lstm/u")]


def test_compare_adds_a_pair_of_planned_cells_and_refuses_one_that_is_not_planned(tmp_path, capsys):
    """``--compare X Y`` reports P(X > Y) besides the built-in pairs (a built-in one named again is
    reported once); a cell it names that is not planned is a one-line error before anything runs."""
    plans = build_suite(tmp_path)
    extra = [("lstm/standard", "none/standard"), ("lstm/ur", "lstm/standard")]
    assert suite.comparison_pairs(plans, extra) == [("lstm/ur", "lstm/standard"), ("lstm/standard", "none/standard")]
    suite.report(plans, tmp_path, reps=REPS, compare=extra)
    statistics = (tmp_path / "statistics.md").read_text()
    assert "| P(lstm/standard > none/standard) | 3 vs 3 |" in statistics
    assert statistics.count("| P(lstm/ur > lstm/standard) |") == 1
    argv = ["--delays", "10", "--cells", "lstm/ur", "lstm/standard", "--compare", "gru/ur", "lstm/standard"]
    with pytest.raises(SystemExit):
        suite.parse_args(argv)
    assert "--compare names 'gru/ur', which is not planned; planned cells: lstm/ur, lstm/standard" in (
        capsys.readouterr().err
    )


def test_compare_names_a_cell_with_its_setting_to_compare_across_settings(capsys):
    """A ``--compare`` name with its setting in brackets, as the tables label a run, is compared as
    named, against the base setting for a bare cell; a bare pair stays within each setting; a pair
    the built-in setting-against-base comparison makes anyway is reported once."""
    t = task()
    context = suite.parse_setting("actors.context_length={episode_length}")
    plans = suite.make_plans((t,), ["lstm/ur", "lstm/chrono"], [0], (grid.BASE, context))
    window = " [actors.context_length={episode_length}]"
    extra = [("lstm/ur" + window, "lstm/chrono"), ("lstm/ur" + window, "lstm/ur"), ("lstm/chrono", "lstm/ur")]
    assert suite.comparison_pairs(plans, extra) == [
        ("lstm/ur", "lstm/chrono"), ("lstm/chrono", "lstm/ur"),
        ("lstm/ur" + window, "lstm/chrono" + window), ("lstm/chrono" + window, "lstm/ur" + window),
        ("lstm/ur" + window, "lstm/chrono"), ("lstm/ur" + window, "lstm/ur"),
        ("lstm/chrono" + window, "lstm/chrono"),
    ]  # fmt: skip
    argv = ["--delays", "10", "--cells", "lstm/ur", "lstm/chrono", "--settings", "base",
            "actors.context_length={episode_length}", "--compare", "lstm/ur" + window, "lstm/chrono"]  # fmt: skip
    assert suite.parse_args(argv).compare == [("lstm/ur" + window, "lstm/chrono")]
    with pytest.raises(SystemExit):
        suite.parse_args(argv[:-4] + ["--compare", "lstm/ur" + window, "lstm/chrono"])
    assert (
        f"--compare names 'lstm/ur{window}', which is not planned; planned cells: lstm/ur, lstm/chrono"
        in capsys.readouterr().err
    )


def test_a_grid_is_rebuilt_from_its_versioned_runs_csv(tmp_path):
    """Report, keep runs.csv, delete the run folders: --scores-from gives the same scores and statistics,
    and the runs it holds are listed as done, not run again."""
    plans = build_suite(tmp_path / "first")
    suite.report(plans, tmp_path / "first", reps=REPS)
    archive_path = tmp_path / "scores.csv"
    archive_path.write_text((tmp_path / "first" / "runs.csv").read_text())
    kept = tmp_path / "first" / "runs" / plans[0].name  # one run still has its folder: the folder wins
    (tmp_path / "second" / "runs").mkdir(parents=True)
    kept.rename(tmp_path / "second" / "runs" / plans[0].name)

    archive = suite_archive.read_archive([archive_path])
    suite.report(plans, tmp_path / "second", reps=REPS, archive=archive)
    assert (tmp_path / "second" / "runs.csv").read_text() == archive_path.read_text()
    for start in ("| PassiveMatch-d10 | lstm/ur |", "| PassiveMatch-d10 | P(lstm/ur > lstm/standard) |"):
        assert stats_row((tmp_path / "second" / "statistics.md").read_text(), start) == stats_row(
            (tmp_path / "first" / "statistics.md").read_text(), start
        )
    [ur1] = [p for p in plans if p.cell == "lstm/ur" and p.seed == 1]
    row = suite_archive.archived_row(ur1, archive)  # final 1.45
    assert row["score"] == pytest.approx(0.7 / 0.75) and row["solved"] and row["timescales"] is None
    listing = suite.list_plans(plans, tmp_path / "second", archive)
    assert listing.count("done (archived)") == len(plans) - 1 and "at most 0 env steps" in listing


def test_a_scores_file_that_is_not_a_runs_csv_is_refused(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("task,cell,seed\nPassiveMatch-d10,lstm/ur,0\n")
    with pytest.raises(ValueError, match="wrong.csv: not a memory-suite runs.csv .*final_return"):
        suite_archive.read_archive([wrong])
    with pytest.raises(SystemExit):
        suite.parse_args(["--scores-from", str(tmp_path / "absent.csv")])


def test_a_run_named_twice_in_one_scores_file_is_refused_and_a_later_file_overrides(tmp_path):
    header = "task,cell,seed,status,final_return\n"
    twice = tmp_path / "twice.csv"
    twice.write_text(header + "PassiveMatch-d10,lstm/ur,0,partial,1.0\n"
                     "PassiveMatch-d10,lstm/ur,1,done,1.2\n" "PassiveMatch-d10,lstm/ur,0,done,1.4\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"twice.csv, line 4: PassiveMatch-d10 lstm/ur seed 0 is already on line 2"):
        suite_archive.read_archive([twice])
    first, rerun = tmp_path / "first.csv", tmp_path / "rerun.csv"
    first.write_text(header + "PassiveMatch-d10,lstm/ur,0,partial,1.0\nPassiveMatch-d10,lstm/ur,1,done,1.2\n")
    rerun.write_text(header + "PassiveMatch-d10,lstm/ur,0,done,1.4\n")
    archive = suite_archive.read_archive([first, rerun])
    assert {seed: row["final_return"] for (_, _, seed), row in archive.items()} == {0: "1.4", 1: "1.2"}


def test_archived_runs_are_not_run_again(tmp_path, monkeypatch, capsys):
    plans = build_suite(tmp_path / "first")
    suite.report(plans, tmp_path / "first", reps=REPS)
    rows = (tmp_path / "first" / "runs.csv").read_text().splitlines()
    archive_path = tmp_path / "scores.csv"
    archive_path.write_text("\n".join(r for r in rows if ",lstm/ur,2," not in r) + "\n")  # UR seed 2 not archived
    ran = []
    monkeypatch.setattr(suite, "run_suite", lambda plans, *args: ran.extend(plans) or ["started"] * len(plans))
    argv = ["--delays", "10", "--cells", "lstm/ur", "lstm/standard", "none/standard", "--seeds", "0", "1", "2"]
    assert (
        suite.main([*argv, "--out", str(tmp_path / "second"), "--scores-from", str(archive_path), "--reps", "50"]) == 0
    )
    assert [(p.cell, p.seed) for p in ran] == [("lstm/ur", 2)]
    assert "8 archived, 9 planned" in capsys.readouterr().out


def test_the_advantage_is_plotted_against_the_delay_per_task_family(tmp_path):
    def row(task, comparison, p, d):
        return [task, comparison, "5 vs 5", p, p - 0.2, min(p + 0.2, 1.0), d, d - 0.3, d + 0.3]

    ur = "P(lstm/ur > lstm/standard)"
    poi = [row("PassiveMatch-d200", ur, 0.8, 0.2), row("PassiveMatch-d50", ur, 0.6, 0.1),
           row("PassiveMatch-d100", ur, 0.96, 0.7), row("ActiveMatch-d100", ur, 0.5, 0.0),
           row(suite_report.ALL_TASKS, ur, 0.7, 0.3)]  # fmt: skip
    delays = {"PassiveMatch-d50": 50, "PassiveMatch-d100": 100, "PassiveMatch-d200": 200, "ActiveMatch-d100": 100}
    series = suite_report.effect_series(poi, delays)
    # One family with three delays, in order; ActiveMatch at one delay and the pooled row are left out.
    assert list(series) == [(ur, "PassiveMatch")]
    assert [(d, r[3], r[6]) for d, r in series[(ur, "PassiveMatch")]] == [
        (50, 0.6, 0.1),
        (100, 0.96, 0.7),
        (200, 0.8, 0.2),
    ]
    assert suite_report.plot_effect_by_delay(poi, delays, tmp_path / "effect.png").stat().st_size > 1000
    assert suite_report.plot_effect_by_delay(poi[3:], delays, tmp_path / "none.png") is None  # one delay: no figure
    assert not (tmp_path / "none.png").exists()


def sooner_reference(x, y):
    """P(X sooner) from the definition, pair by pair: 1 sooner, 0.5 a tie or both missed (None), 0 later."""
    total = 0.0
    for a in x:
        for b in y:
            if a is None and b is None or a == b:
                total += 0.5
            elif b is None or (a is not None and a < b):
                total += 1.0
    return total / (len(x) * len(y))


def test_sooner_ranks_a_miss_behind_every_solve_and_ties_misses():
    steps = {"lstm/ur": [3e6, None, 5e6, 5e6], "lstm/standard": [4e6, None, None]}
    rows = [{"task": "ActiveMatch-d50", "cell": c, "steps_to_threshold": s} for c, runs in steps.items() for s in runs]
    [row] = suite_report.sooner_rows(suite_report.speed_sets(rows), [("lstm/ur", "lstm/standard")], reps=2000)
    assert row[:4] == ["ActiveMatch-d50", "P(lstm/ur sooner than lstm/standard)", "4 vs 3", "3 vs 1"]
    assert row[4] == pytest.approx(sooner_reference(steps["lstm/ur"], steps["lstm/standard"]))  # 8 / 12
    assert 0.0 <= row[5] <= row[4] <= row[6] <= 1.0
