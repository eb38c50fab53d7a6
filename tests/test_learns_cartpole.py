"""End to end, real local Ray: the recurrent agent of the shipped CartPole preset leaves random play.

This is the test that the value-scale bug (issue 10) would have failed: without value
normalisation the UR-LSTM agent stayed at the random policy's ~22 for a million steps, because
the baseline's regression onto returns of ~100 swamped the policy gradient. With PopArt the
100-episode mean passes 160 by 100k env steps in every seed measured (seeds 0-2 of 1M-step runs:
188, 161, 164; 100k-step runs at a constant rate: 181, 242; without PopArt: 23). The rate is held
constant: the preset's linear decay would reach zero at this small budget and halve the learning.
"""

from __future__ import annotations

import json

import pytest

import run_impala
from learner import metrics as m
from learner.plots import read_scalars

RANDOM_PLAY = 22  # CartPole-v1's mean return under the uniform policy
BUDGET = 100_000


@pytest.mark.slow
@pytest.mark.ray
def test_recurrent_agent_leaves_random_play_on_cartpole(tmp_path):
    argv = ["--config", "configs/cartpole.yaml", f"run.total_env_steps={BUDGET}", f"run.log_dir={tmp_path}",
            "run.name=cartpole", "run.console_interval_s=30", "learner.lr_schedule=constant"]  # fmt: skip
    assert run_impala.main(argv) == 0
    summary = json.loads((tmp_path / "cartpole" / "summary.json").read_text())
    assert summary["mean_return"] > 4 * RANDOM_PLAY, summary
    steps, means = read_scalars(tmp_path / "cartpole")[m.EPISODE_RETURN_MEAN100]
    assert means[-1] == pytest.approx(summary["mean_return"], rel=0.05)  # the logged curve is the summary's figure
    assert max(means[: len(means) // 4]) < 2 * RANDOM_PLAY  # it started from random play: the gain was learned
