"""End to end, real local Ray: the recurrent agent of the shipped CartPole preset leaves random play.

This is the test that the value-scale bug (issue 10) would have failed: without value
normalisation the UR-LSTM agent stayed at the random policy's ~22 for a million steps, because
the baseline's regression onto returns of ~100 swamped the policy gradient. With PopArt the
best 100-episode mean passes 4x random play within 100k env steps in every run measured (32 runs
of 100k-200k steps with Adam's momentum at 0.9, 2026-11-30: it first passes 88 at 45k-76k steps,
and the best is 187-426; without PopArt the mean stayed at 23; 6 runs of the preset without
momentum, 2026-12-01: first past 88 at 40k-60k steps, best 170-248). The *final* mean is not
asserted: at this constant rate it oscillates, and 2 of the 33 runs with momentum ended a 100k
budget in a dip (26 and 65) after peaking above 200 (the instability that issue 10 still tracks).
The rate is held constant: the preset's linear decay would reach zero at this small budget and
halve the learning.
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
    steps, means = read_scalars(tmp_path / "cartpole")[m.EPISODE_RETURN_MEAN100]
    assert max(means) > 4 * RANDOM_PLAY, summary
    assert means[-1] == pytest.approx(summary["mean_return"], rel=0.05)  # the logged curve is the summary's figure
    # It started from random play, so the gain was learned. The first logged mean covers the first 100
    # episodes (about 2k env steps, a few updates); a quarter of the logged points was used before, and a
    # fast run (193 at 100k, 2026-12-02 CI) had already passed 44 inside that quarter.
    assert means[0] < 2 * RANDOM_PLAY, means[:5]
