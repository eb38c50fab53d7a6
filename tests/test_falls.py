"""benchmarks/falls.py: Fisher's exact test against an enumeration of the null's equally likely
assignments and against scipy, the counting of falls from runs.csv rows, and the CLI on a hand-written file."""

from __future__ import annotations

import csv
import itertools

import pytest
from scipy import stats

from benchmarks import falls
from benchmarks.learning import RUN_HEADERS


def reference_p(events_x: int, runs_x: int, events_y: int, runs_y: int) -> float:
    """Every way to choose which runs of X and Y are the events, given the total: the share of them
    in which X has ``events_x`` events or fewer (plain enumeration of the null's equally likely tables)."""
    runs = runs_x + runs_y
    events = events_x + events_y
    labelled = [0] * runs_x + [1] * runs_y  # 0: a run of X
    chosen = [sum(1 for i in subset if labelled[i] == 0) for subset in itertools.combinations(range(runs), events)]
    return sum(1.0 for k in chosen if k <= events_x) / len(chosen)


def test_fisher_matches_enumeration_and_scipy():
    for runs_x, runs_y in [(1, 1), (3, 4), (6, 5), (10, 10)]:
        for events_x, events_y in itertools.product(range(runs_x + 1), range(runs_y + 1)):
            p = falls.fisher_exact_fewer(events_x, runs_x, events_y, runs_y)
            if runs_x + runs_y <= 11:
                assert p == pytest.approx(reference_p(events_x, runs_x, events_y, runs_y), abs=1e-12)
            table = [[events_x, runs_x - events_x], [events_y, runs_y - events_y]]
            assert p == pytest.approx(stats.fisher_exact(table, alternative="less")[1], rel=1e-9)


def test_fisher_edges():
    # LEARNING.md's post hoc count, tied 0 falls in 10 against classic 5 in 11: C(16, 10) / C(21, 10) one-sided
    # (the doc's two-sided p = 0.035 adds the other tail, X = 5, of C(16, 5) / C(21, 10)).
    assert falls.fisher_exact_fewer(0, 10, 5, 11) == pytest.approx(8008 / 352716, rel=1e-12)
    assert falls.fisher_exact_fewer(0, 5, 0, 5) == 1.0  # no events: nothing to tell apart
    assert falls.fisher_exact_fewer(5, 5, 0, 5) == 1.0
    with pytest.raises(ValueError, match="within runs"):
        falls.fisher_exact_fewer(3, 2, 0, 5)


def row(task: str, cell: str, seed: int, reached: str, lowest: str) -> dict[str, str]:
    values = dict.fromkeys(RUN_HEADERS, "")
    values.update(task=task, cell=cell, seed=str(seed), status="done", env_steps="2000000", final="1.0", best="1.0",
                  steps_to_threshold=reached, lowest_after=lowest, threshold="0.9")  # fmt: skip
    return values


def test_count_falls():
    rows = [row("A", "x", 0, "1000", "0.95"), row("A", "x", 1, "2000", "0.1"), row("B", "x", 2, "", ""),
            row("B", "x", 3, "3000", ""), row("B", "x", 4, "4000", "0.5")]  # fmt: skip
    counts = falls.count_falls(rows, fall_below=0.5)
    assert counts == falls.Counts(runs=5, learned=4, fell=1)  # 0.5 is not below 0.5; no curve after: no fall
    assert counts.failures == 2


def test_cli_reads_runs_csv_and_names_a_missing_cell(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    rows = [row("A", "tied", s, "1000", "0.9") for s in range(5)] + [
        row("A", "classic", s, "1000", "0.2") for s in range(4)
    ]
    rows += [row("A", "classic", 9, "", ""), row("B", "classic", 0, "1000", "0.1")]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, RUN_HEADERS)
        writer.writeheader()
        writer.writerows(rows)
    assert falls.main([str(path), "--cells", "tied", "classic", "--tasks", "A"]) == 0
    out = capsys.readouterr().out
    # By hand: X gets none of the events, C(events, 0) C(runs - events, 5) / C(runs, 5).
    assert "0/5 vs 4/4, one-sided Fisher p = 0.0079" in out  # 1 / C(9, 5) = 1 / 126
    assert "0/5 vs 5/5, one-sided Fisher p = 0.0040" in out  # 1 / C(10, 5) = 1 / 252
    with pytest.raises(SystemExit, match="no runs of cell 'gru'.*'classic', 'tied'"):
        falls.main([str(path), "--cells", "tied", "gru"])
    with pytest.raises(SystemExit, match="no runs of task C; tasks in the files: \\['A', 'B'\\]"):
        falls.main([str(path), "--cells", "tied", "classic", "--tasks", "A", "C"])
    other = dict(row("B", "tied", 0, "1000", "0.9"), threshold="0.5")
    with path.open("a", newline="") as file:
        csv.DictWriter(file, RUN_HEADERS).writerow(other)
    with pytest.raises(SystemExit, match="different thresholds \\(0.5, 0.9\\)"):
        falls.main([str(path), "--cells", "tied", "classic"])
