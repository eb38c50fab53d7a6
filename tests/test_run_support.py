"""Small pure helpers of the training loop: gate statistics, progress line, run folder."""

import math
import time

import numpy as np
import pytest
import torch

from learner import metrics as m
from learner.console import format_duration, progress_line
from learner.gate_stats import binary_fraction, effective_forget_gates, gate_summaries, log10_timescales
from learner.plots import plot_run, read_scalars, smooth
from learner.run_dir import (
    checkpoint_env_steps,
    checkpoint_path,
    latest_checkpoint,
    prune_checkpoints,
    read_summary,
    write_summary,
)
from learner.tensorboard import TensorBoardLogger


def test_binary_fraction_counts_both_tails():
    g = torch.tensor([0.01, 0.04, 0.05, 0.5, 0.95, 0.96, 0.999, 0.3])
    assert binary_fraction(g) == 4 / 8


def test_timescale_is_one_over_one_minus_g():
    g = torch.tensor([0.0, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(log10_timescales(g).numpy(), np.log10([1.0, 2.0, 10.0, 100.0]), rtol=1e-6)
    assert math.isfinite(float(log10_timescales(torch.tensor([1.0]))))


def test_effective_gate_is_g_when_refined_else_f():
    f, r, g = torch.full((2, 3, 4), 0.1), torch.full((2, 3, 4), 0.2), torch.full((2, 3, 4), 0.3)
    layers = effective_forget_gates({"f": f, "r": r, "g": g, "layer1/f": f})
    assert set(layers) == {"", "layer1/"}
    assert layers[""] is g and layers["layer1/"] is f


def test_gate_summaries_tags():
    gates = {"f": torch.rand(3, 2, 5), "g": torch.rand(3, 2, 5), "layer1/f": torch.full((3, 2, 5), 0.99)}
    scalars, histograms = gate_summaries(gates)
    assert scalars["gates/layer1/binary_frac"] == 1.0
    assert {"gates/f", "gates/g", "gates/layer1/f", "gates/timescale_log10"} <= set(histograms)
    assert histograms["gates/f"].shape == (30,)


def test_progress_line_is_one_plain_line():
    line = progress_line(61_440, 500_000, 2315.0, 45.2, 37, 120)
    assert "\n" not in line and "\r" not in line
    assert "61,440/500,000" in line and "2,315 steps/s" in line and "return 45.20" in line
    assert "ETA 3m09s" in line
    assert "return n/a" in progress_line(0, 10, 0.0, None, 0, 0)
    assert progress_line(2240, 2000, 300.0, 20.0, 101, 7).startswith("[100.0%] steps 2,240/2,000")  # overshoot
    assert format_duration(3700) == "1h01m"


def test_checkpoints_sort_by_steps_and_prune(tmp_path):
    for steps in (5, 100, 20):
        path = checkpoint_path(tmp_path, steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 100)
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        checkpoint_path(tmp_path, 20).name,
        checkpoint_path(tmp_path, 100).name,
    ]
    assert latest_checkpoint(tmp_path / "empty") is None


def test_summary_round_trip(tmp_path):
    write_summary(tmp_path, {"env_steps": 3, "mean_return": 1.5})
    assert read_summary(tmp_path) == {"env_steps": 3, "mean_return": 1.5}


def test_a_summary_is_never_replaced_by_a_poorer_one(tmp_path):
    finished = {"env_steps": 4000, "episodes": 500, "mean_return": 1.2}
    assert write_summary(tmp_path, finished)
    # A resume that stopped before its first update: same steps, no episodes, no mean return.
    for poorer in ({"env_steps": 4000, "episodes": 0, "mean_return": None},
                   {"env_steps": 4000, "episodes": 500, "mean_return": None},
                   {"env_steps": 3000, "episodes": 900, "mean_return": 1.4}):  # fmt: skip
        assert not write_summary(tmp_path, poorer)
        assert read_summary(tmp_path) == finished
    longer = {"env_steps": 4800, "episodes": 560, "mean_return": 1.3}
    assert write_summary(tmp_path, longer)
    assert read_summary(tmp_path) == longer
    (tmp_path / "summary.json").write_text("{broken")
    assert write_summary(tmp_path, finished)  # a broken file is no summary to keep


def test_checkpoint_env_steps_come_from_the_name(tmp_path):
    assert checkpoint_env_steps(checkpoint_path(tmp_path, 4160)) == 4160
    with pytest.raises(ValueError, match="not a checkpoint name"):
        checkpoint_env_steps(tmp_path / "model.pt")


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], window=2) == [1.0, 2.0, 4.0, 6.0]


def test_curves_from_two_event_files_resume_overrides_old_steps(tmp_path):
    first = TensorBoardLogger(tmp_path)
    for step in (10, 20, 30):
        first.scalars({m.EPISODE_RETURN: float(step)}, step)
    first.close()
    time.sleep(0.05)  # the resumed file is newer
    second = TensorBoardLogger(tmp_path, purge_step=20)
    second.scalars({m.EPISODE_RETURN: -1.0, m.POLICY_ENTROPY: 0.5}, 30)
    second.close()
    scalars = read_scalars(tmp_path)
    assert scalars[m.EPISODE_RETURN] == ([10, 20, 30], [10.0, 20.0, -1.0])
    assert plot_run(tmp_path).read_bytes().startswith(b"\x89PNG")
