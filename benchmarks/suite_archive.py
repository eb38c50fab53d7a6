"""Scores of runs whose folders are gone: the memory suite's ``runs.csv`` read back as report rows.

Run folders (TensorBoard events, checkpoints) are large and live under ``benchmarks/out/``, which is
not versioned; a ``runs.csv`` is a few hundred bytes a run. Versioned under ``docs/data/``, it lets
``python -m benchmarks.memory_suite ... --scores-from docs/data/<grid>.csv --report-only`` rebuild a
grid's tables and statistics on any machine, and lets a later session add seeds to a grid whose
earlier runs it no longer holds. An archived row has no learning curve and no gate histograms, so it
counts in the tables, the IQM, the probability of improvement, the profiles and the wall time, but
not in the curve figures or the timescale section.

The score is recomputed from the final return with the task's current rule (``Task.score``), so an
archive and a fresh run folder are always scored alike.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suite_grid import RunPlan

Key = tuple[str, str, int]  # (task, cell label, seed): what names a run in runs.csv
INTEGER_FIELDS = ("env_steps", "final_episodes")
FLOAT_FIELDS = ("final_return", "auc", "steps_to_threshold", "binary_g", "policy_entropy", "wall_time_s")
REQUIRED = ("task", "cell", "seed", "status", "final_return")


def read_archive(
    paths: Iterable[Path], required: tuple[str, ...] = REQUIRED, kind: str = "memory-suite"
) -> dict[Key, dict[str, str]]:
    """Every row of the given ``runs.csv`` files by (task, cell, seed); a later file's row wins.

    ``ValueError`` naming the file for a missing column of ``required`` (``kind`` names the report that
    writes such files), a row without a seed, or a run named twice in one file (one of the two would be
    dropped from every table without a word; a rerun goes into a file of its own, listed after). A
    memory-suite row without a final return is a run that logged none (it crashed before its first
    update): it scores 0, as in the report."""
    archive: dict[Key, dict[str, str]] = {}
    for path in paths:
        archive.update(read_runs_file(Path(path), required, kind))
    return archive


def read_runs_file(path: Path, required: tuple[str, ...], kind: str) -> dict[Key, dict[str, str]]:
    """One ``runs.csv``'s rows by (task, cell, seed), with ``read_archive``'s errors."""
    rows: dict[Key, dict[str, str]] = {}
    first_line: dict[Key, int] = {}
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a {kind} runs.csv (no column {', '.join(missing)})")
        for line, row in enumerate(reader, start=2):
            if not row["seed"].strip():
                raise ValueError(f"{path}, line {line}: a run needs its seed")
            key = (row["task"], row["cell"], int(row["seed"]))
            if key in rows:
                raise ValueError(
                    f"{path}, line {line}: {key[0]} {key[1]} seed {key[2]} is already "
                    f"on line {first_line[key]}; one row a run (a rerun goes in a file of its own)"
                )
            rows[key], first_line[key] = row, line
    return rows


def archive_key(plan: RunPlan) -> Key:
    """How ``plan``'s row is named in runs.csv."""
    return plan.task.name, plan.label, plan.seed


def archived_row(plan: RunPlan, archive: Mapping[Key, Mapping[str, str]]) -> dict[str, Any] | None:
    """The report row (``memory_suite.run_metrics``'s keys) of ``plan`` from the archive, or None."""
    row = archive.get(archive_key(plan))
    if row is None:
        return None
    values: dict[str, Any] = {name: parse_number(row.get(name), int) for name in INTEGER_FIELDS}
    values.update({name: parse_number(row.get(name), float) for name in FLOAT_FIELDS})
    return {
        **values, "task": plan.task.name, "cell": plan.label, "seed": plan.seed, "setting": plan.setting.label,
        "status": row["status"], "score": plan.task.score(values["final_return"]),
        "solved": values["steps_to_threshold"] is not None,
        "curve": (np.zeros(0), np.zeros(0)), "timescales": None,
    }  # fmt: skip


def parse_number(text: str | None, kind: type) -> Any:
    """An empty cell is an unknown value (None); ``int`` cells may be written as floats (``8.0e6``)."""
    if text is None or not text.strip():
        return None
    return int(float(text)) if kind is int else float(text)
