"""The IMPALA loss terms as small pure functions (Espeholt et al. 2018, section 4.2).

Reduction: every term is SUMMED over time and batch, as in scalable_agent and TorchBeast.
The IMPALA hyper-parameters (RMSProp lr 6e-4, eps 0.01, gradient-norm clip 40,
``baseline_cost`` 0.5, ``entropy_cost`` 0.01) were tuned for that reduction, so the
defaults in ``configs.schema.LearnerConfig`` stay valid; with a mean the effective
step would shrink by ``T * B`` and every one of them would need re-tuning. The price
is that the gradient scale grows with ``T * B``: change the batch shape, revisit lr.

Shapes: ``[T, B]`` (trailing dimensions are summed as well).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class LossTerms(NamedTuple):
    total: Tensor  # scalar: pg + baseline + entropy (the weighted terms below)
    pg: Tensor  # scalar: policy-gradient term
    baseline: Tensor  # scalar: baseline_cost * 0.5 * sum (vs - V)^2
    entropy: Tensor  # scalar: entropy_cost * (- sum H(pi))


def policy_gradient_loss(action_log_probs: Tensor, pg_advantages: Tensor) -> Tensor:
    """``- sum_t,b log pi(a_t|x_t) * A_t``: action_log_probs [T, B] (with gradient), pg_advantages [T, B].

    The advantages are V-trace targets, constants of the loss: they are detached here so that
    no gradient can reach the baseline through the policy term even if a caller forgets.
    """
    return -torch.sum(action_log_probs * pg_advantages.detach())


def clipped_policy_gradient_loss(
    action_log_probs: Tensor, old_action_log_probs: Tensor, pg_advantages: Tensor, clip: float
) -> Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), summed: ``- sum min(r A, clip(r, 1-e, 1+e) A)``.

    ``r_t = pi(a_t|x_t) / pi_old(a_t|x_t)``, where ``pi_old`` is the policy that computed the advantages
    (the learner's at the batch's first pass). At ``r = 1`` the gradient is the plain policy gradient's;
    a step whose ratio has already moved past ``1 +- clip`` in the advantage's direction gets none, which
    bounds the policy's change per *state* over several passes on one batch.
    """
    ratio = torch.exp(action_log_probs - old_action_log_probs.detach())
    advantages = pg_advantages.detach()
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    return -torch.sum(surrogate)


def baseline_loss(values: Tensor, vs: Tensor) -> Tensor:
    """``0.5 * sum_t,b (vs_t - V(x_t))^2``: values [T, B] (with gradient), vs [T, B] (target, detached).

    Its gradient with respect to V(x_t) is ``V(x_t) - vs_t``: regression towards the V-trace target.
    """
    return 0.5 * torch.sum((vs.detach() - values) ** 2)


def entropy_loss(entropy: Tensor) -> Tensor:
    """``- sum_t,b H(pi(.|x_t))``: entropy [T, B]. Minimising it maximises entropy (exploration bonus)."""
    return -torch.sum(entropy)


def total_loss(
    action_log_probs: Tensor,
    pg_advantages: Tensor,
    values: Tensor,
    vs: Tensor,
    entropy: Tensor,
    baseline_cost: float,
    entropy_cost: float,
    old_action_log_probs: Tensor | None = None,
    ppo_clip: float | None = None,
) -> LossTerms:
    """IMPALA's objective: ``pg + baseline_cost * baseline + entropy_cost * entropy``.

    Args:
        action_log_probs: [T, B] ``log pi(a_t|x_t)`` under the learner's policy (with gradient).
        pg_advantages: [T, B] V-trace policy-gradient advantages (constant).
        values: [T, B] the learner's baseline ``V(x_t)`` (with gradient).
        vs: [T, B] V-trace value targets (constant).
        entropy: [T, B] entropy of the learner's policy at each step (with gradient).
        baseline_cost, entropy_cost: the weights of the two auxiliary terms.
        old_action_log_probs, ppo_clip: with both, the policy term is PPO's clipped surrogate against
            ``old_action_log_probs`` [T, B] (``clipped_policy_gradient_loss``); otherwise IMPALA's.

    Returns:
        ``LossTerms`` whose weighted parts add up to ``total``.
    """
    if ppo_clip is None or old_action_log_probs is None:
        pg = policy_gradient_loss(action_log_probs, pg_advantages)
    else:
        pg = clipped_policy_gradient_loss(action_log_probs, old_action_log_probs, pg_advantages, ppo_clip)
    baseline = baseline_cost * baseline_loss(values, vs)
    entropy_term = entropy_cost * entropy_loss(entropy)
    return LossTerms(total=pg + baseline + entropy_term, pg=pg, baseline=baseline, entropy=entropy_term)
