"""The speed benchmarks' plumbing on a tiny shape (no timing is asserted: the figures live in docs/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import cells

ROOT = Path(__file__).resolve().parents[1]


def test_cells_benchmark_times_every_entry_and_tabulates_the_ratios():
    shapes = ((3, 2, 4), (5, 2, 4))
    results = cells.measure(["lstm/standard", "lstm/ur", "none/standard"], shapes, repeats=2).ms
    assert list(results) == [cells.FUSED, "lstm/standard", "lstm/ur", "none/standard"]
    assert all(len(times) == len(shapes) and all(t > 0 for t in times) for times in results.values())
    table = cells.format_table(results, shapes).splitlines()
    assert table[0].count("x lstm/std") == len(shapes) and len(table) == 2 + len(results)
    ratio = results["lstm/ur"][1] / results["lstm/standard"][1]
    assert f"| {ratio:.2f} |" in table[4]  # lstm/ur's T=5 ratio to lstm/standard


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cells_benchmark_runs_on_cuda():
    results = cells.measure(["lstm/ur"], ((3, 2, 4),), repeats=1, device=torch.device("cuda")).ms
    assert results["lstm/ur"][0] > 0


def test_cells_benchmark_times_the_compiled_path_beside_the_reference_and_reports_compile_seconds_apart():
    shapes = ((3, 2, 4),)
    timings = cells.measure(["lstm/ur"], shapes, repeats=1, compiled=["lstm/ur"], backend="aot_eager")
    assert list(timings.ms) == [cells.FUSED, "lstm/ur", "lstm/ur compiled"]
    assert list(timings.compile_s) == ["lstm/ur compiled"] and timings.compile_s["lstm/ur compiled"][0] > 0
    assert "| lstm/ur compiled |" in cells.format_table(timings.ms, shapes)
    assert cells.format_compile_times(timings.compile_s, shapes).startswith("compile lstm/ur: T=3 ")


def test_cells_benchmark_gives_a_compiled_row_per_chunk_length():
    shapes = ((5, 2, 4),)
    timings = cells.measure([], shapes, repeats=1, compiled=["lstm/ur"], backend="aot_eager", chunks=(0, 2))
    assert list(timings.ms) == [cells.FUSED, "lstm/ur compiled", "lstm/ur compiled/2"]
    assert all(ms[0] > 0 for ms in timings.ms.values())
    lines = cells.format_compile_times(timings.compile_s, shapes).splitlines()
    assert lines[0].startswith("compile lstm/ur: T=5 ") and lines[1].startswith("compile lstm/ur in chunks of 2: T=5 ")


def test_no_benchmark_module_shadows_a_top_level_package():
    """``python benchmarks/x.py`` puts benchmarks/ first on sys.path, where ``learner.py`` once hid ``learner``."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert {"learner", "envs", "configs"} <= packages
    clashes = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} & packages
    assert not clashes, f"benchmarks/ modules named like top-level packages: {sorted(clashes)}"


def test_a_benchmark_runs_by_path_from_another_folder(tmp_path):
    script = ROOT / "benchmarks" / "memory_suite.py"
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: memory_suite.py")
