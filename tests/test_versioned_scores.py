"""The versioned per-run scores in docs/data/ stay readable by the reports that rebuild the results from
them (``--scores-from``), and no file names one run twice: the archive keys rows by (task, cell, seed),
so ``read_archive`` refuses a repeated key within a file (a rerun goes into a file of its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import learning, suite_archive

DATA = Path(__file__).resolve().parents[1] / "docs" / "data"
SUITE_FILES = sorted(DATA.glob("suite_*.csv"))
LEARNING_FILES = sorted(DATA.glob("learning_*.csv"))
STATUSES = {"done", "partial", "missing"}  # memory_suite.run_status


def test_the_data_folder_holds_both_kinds_of_score_file():
    assert SUITE_FILES and LEARNING_FILES


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda path: path.name)
def test_a_memory_suite_score_file_reads_back_with_one_row_a_run(path):
    archive = suite_archive.read_archive([path])  # ValueError on a run named twice
    for (task, cell, seed), row in archive.items():
        where = f"{path.name}: {task} {cell} seed {seed}"
        assert row["status"] in STATUSES, where
        assert row["source"].strip(), f"{where} names no source"


@pytest.mark.parametrize("path", LEARNING_FILES, ids=lambda path: path.name)
def test_a_learning_score_file_reads_back_with_one_row_a_run(path):
    assert learning.read_scores([path])  # ValueError on a run named twice
