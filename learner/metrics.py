"""Metric names, defined once (DESIGN.md, "Metric names"): the learner, the loop and the logger share them.

Namespaces follow CleanRL: ``charts/`` what a user watches, ``losses/`` the loss terms,
``vtrace/`` off-policy diagnostics, ``optim/`` the optimiser, ``perf/`` throughput,
``actors/`` the rollout side, ``gates/`` the memory cells' gate statistics.
"""

from __future__ import annotations

EPISODE_RETURN = "charts/episode_return"  # mean over the episodes that ended in this update's batch
RETURN_WINDOW = 100  # episodes in the console's and the summary's mean return
# The mean of the last RETURN_WINDOW episodes (the console's figure), logged once that many have ended:
# a mean of the first few would read as a best or a threshold crossing that no policy earned.
EPISODE_RETURN_MEAN100 = "charts/episode_return_mean100"
EPISODE_LENGTH = "charts/episode_length"
# How many episodes ended in this update's batch: the weight of its EPISODE_RETURN when returns are averaged
# over a longer stretch (POPGym's MMER averages every episode of a 65,536-step iteration).
EPISODES_ENDED = "charts/episodes"

LOSS_TOTAL = "losses/total"
LOSS_PG = "losses/pg"
LOSS_BASELINE = "losses/baseline"  # baseline_cost * 0.5 * sum (vs - V)^2
LOSS_ENTROPY = "losses/entropy"  # entropy_cost * (- sum entropy); the three weighted terms add up to the total

POLICY_ENTROPY = "policy/entropy"  # mean entropy of the learner's policy per step
# Share of trained steps whose pi / pi_old lay outside 1 +- learner.ppo_clip in the last pass (0 with one pass).
POLICY_PPO_CLIP_FRAC = "policy/ppo_clip_frac"

OPTIM_GRAD_NORM = "optim/grad_norm"  # global norm before clipping
OPTIM_LEARNING_RATE = "optim/learning_rate"
OPTIM_SKIPPED_STEPS = "optim/skipped_steps"  # cumulative count of non-finite steps skipped

VTRACE_RHO_MEAN = "vtrace/rho_mean"
VTRACE_RHO_CLIP_FRAC = "vtrace/rho_clip_frac"  # fraction of rho_t above clip_rho_threshold
VTRACE_VS_MEAN = "vtrace/vs_mean"
VTRACE_ADVANTAGE_MEAN = "vtrace/advantage_mean"  # in return units
# Root mean square of the advantages as the policy term weighs them (with PopArt, divided by its std): the
# size of the policy gradient's per-step weight, to read beside learner.entropy_cost, the entropy term's.
VTRACE_ADVANTAGE_RMS = "vtrace/advantage_rms"

PERF_ENV_STEPS_PER_S = "perf/env_steps_per_s"
PERF_LEARNER_MS = "perf/learner_ms"
PERF_QUEUE_WAIT_MS = "perf/queue_wait_ms"

VALUE_NORM_MEAN = "value/norm_mean"  # PopArt's running mean of the value targets (0 without PopArt)
VALUE_NORM_STD = "value/norm_std"  # and their std: the scale the baseline and the advantages are divided by

ACTORS_POLICY_LAG = "actors/policy_lag"

GATES_F = "gates/f"
GATES_R = "gates/r"
GATES_G = "gates/g"
GATES_BINARY_FRAC = "gates/binary_frac"

# What Learner.update returns, in this order.
LEARNER_METRICS = (
    LOSS_TOTAL,
    LOSS_PG,
    LOSS_BASELINE,
    LOSS_ENTROPY,
    POLICY_ENTROPY,
    OPTIM_GRAD_NORM,
    OPTIM_LEARNING_RATE,
    VTRACE_RHO_MEAN,
    VTRACE_RHO_CLIP_FRAC,
    VTRACE_VS_MEAN,
    VTRACE_ADVANTAGE_MEAN,
    VTRACE_ADVANTAGE_RMS,
    PERF_LEARNER_MS,
    OPTIM_SKIPPED_STEPS,
    VALUE_NORM_MEAN,
    VALUE_NORM_STD,
    POLICY_PPO_CLIP_FRAC,
)
