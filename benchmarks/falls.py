"""Does one cell fall less often than another after it has learned? Fisher's exact test on learning runs.

A run *falls* when its 100-episode mean drops below ``--fall-below`` after it first reached the task's
threshold: the columns ``steps_to_threshold`` (empty when it never got there) and ``lowest_after`` of
a learning-benchmark ``runs.csv`` (``benchmarks/learning.py``; versioned copies in ``docs/data/``).
This reads the test registered in docs/LEARNING.md ("A planned test of it, on fresh seeds"):

    python -m benchmarks.falls docs/data/learning_falls_planned.csv --cells lstm/tied lstm/standard

The primary test counts falls among the runs that reached the threshold; the secondary one also
counts a run that never reached it as a failure. Both are one-sided: the first cell fails less.
Every run of the two cells in the files counts, all tasks pooled (``--tasks`` narrows them).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from benchmarks.learning import read_scores
from benchmarks.suite_archive import parse_number


def fisher_exact_fewer(events_x: int, runs_x: int, events_y: int, runs_y: int) -> float:
    """One-sided p-value of Fisher's exact test that X has fewer events per run than Y.

    Given the margins (``runs_x`` runs of X, ``events_x + events_y`` events in all), under the null the
    events of X are hypergeometric; the p-value is the chance that X gets ``events_x`` or fewer.
    This equals ``scipy.stats.fisher_exact([[events_x, runs_x - events_x], [events_y, runs_y - events_y]],
    alternative="less")``; exact rationals, so there is no rounding until the end."""
    if not (0 <= events_x <= runs_x and 0 <= events_y <= runs_y):
        raise ValueError(f"events must lie within runs: {events_x}/{runs_x}, {events_y}/{runs_y}")
    events, runs = events_x + events_y, runs_x + runs_y
    ways = sum(math.comb(events, k) * math.comb(runs - events, runs_x - k) for k in range(events_x + 1))
    return float(Fraction(ways, math.comb(runs, runs_x)))


class Counts(NamedTuple):
    """One cell's runs: how many, how many reached the threshold, how many of those fell."""

    runs: int
    learned: int
    fell: int

    @property
    def failures(self) -> int:
        """Falls, and runs that never reached the threshold."""
        return self.fell + self.runs - self.learned


def count_falls(rows: Iterable[dict[str, str]], fall_below: float) -> Counts:
    """Counts over ``rows`` of one cell (runs.csv rows as strings). A run that reached the threshold
    but logged nothing after it (``lowest_after`` empty) cannot have fallen."""
    runs = learned = fell = 0
    for row in rows:
        runs += 1
        if parse_number(row["steps_to_threshold"], float) is None:
            continue
        learned += 1
        lowest = parse_number(row["lowest_after"], float)
        fell += lowest is not None and lowest < fall_below
    return Counts(runs, learned, fell)


def primary_p(x: Counts, y: Counts) -> float:
    """X falls less than Y, among the runs that learned."""
    return fisher_exact_fewer(x.fell, x.learned, y.fell, y.learned)


def secondary_p(x: Counts, y: Counts) -> float:
    """X fails less than Y, a run that never learned counted as a failure."""
    return fisher_exact_fewer(x.failures, x.runs, y.failures, y.runs)


def run_line(row: dict[str, str]) -> str:
    """One run: when it first reached the threshold, its lowest 100-episode mean after, its final one."""
    reached, lowest = parse_number(row["steps_to_threshold"], int), parse_number(row["lowest_after"], float)
    final = parse_number(row["final"], float)
    return (f"{row['cell']:>16} {row['task']:<24} seed {row['seed']:>3}  reached {row['threshold']} at "
            f"{'never' if reached is None else f'{reached:,}':>9}  lowest after {'-' if lowest is None else f'{lowest:.2f}':>5}  "
            f"final {'-' if final is None else f'{final:.2f}'}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="learning-benchmark runs.csv files")
    parser.add_argument("--cells", nargs=2, required=True, metavar=("X", "Y"), help="test: X fails less than Y")
    parser.add_argument("--tasks", nargs="*", default=None, help="only these tasks (default: every task in the files)")
    parser.add_argument("--fall-below", type=float, default=0.5, help="a fall is a 100-episode mean below this")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    every = list(read_scores(args.runs).values())
    unknown = sorted(set(args.tasks or ()) - {r["task"] for r in every})
    if unknown:
        raise SystemExit(
            f"no runs of task {', '.join(unknown)}; tasks in the files: {sorted({r['task'] for r in every})}"
        )
    rows = [r for r in every if args.tasks is None or r["task"] in args.tasks]
    thresholds = sorted({r["threshold"] for r in rows if r["cell"] in args.cells})
    if len(thresholds) > 1:  # "reached" would mean different things in one table
        raise SystemExit(f"runs measured against different thresholds ({', '.join(thresholds)}): narrow with --tasks")
    counts = {}
    for cell in args.cells:
        mine = sorted((r for r in rows if r["cell"] == cell), key=lambda r: (r["task"], int(r["seed"])))
        if not mine:
            raise SystemExit(f"no runs of cell {cell!r}; cells in the files: {sorted({r['cell'] for r in rows})}")
        for r in mine:
            print(run_line(r))
        counts[cell] = count_falls(mine, args.fall_below)
    x, y = (counts[c] for c in args.cells)
    for cell, c in counts.items():
        print(
            f"{cell}: {c.runs} runs, {c.learned} reached the threshold, {c.fell} of those fell below {args.fall_below:g}"
        )
    print(f"primary (falls among runs that learned): {x.fell}/{x.learned} vs {y.fell}/{y.learned}, "
          f"one-sided Fisher p = {primary_p(x, y):.4f}")  # fmt: skip
    print(f"secondary (a run that never learned fails too): {x.failures}/{x.runs} vs {y.failures}/{y.runs}, "
          f"one-sided Fisher p = {secondary_p(x, y):.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
