"""V-trace off-policy targets (Espeholt et al. 2018, "IMPALA", section 4.1).

Shapes (time-major, as everywhere in the learner):
    T: unroll length (the number of trained steps), B: batch size.
    Trailing dimensions ``...`` after ``[T, B]`` are allowed and treated elementwise
    (e.g. several value heads); ``bootstrap_value`` then has shape ``[B, ...]``.

Notation of the paper (eq. 1 and the recursion under Remark 1):
    rho_t     = pi(a_t | x_t) / mu(a_t | x_t)                     (importance weight)
    delta_t V = min(rho_bar, rho_t) (r_t + gamma_t V(x_{t+1}) - V(x_t))
    c_t       = lambda * min(c_bar, rho_t)                         (trace coefficient)
    v_s - V(x_s) = delta_s V + gamma_s c_s (v_{s+1} - V(x_{s+1}))  (v_T = V(x_T), the bootstrap)
    pg_advantage_s = min(rho_bar_pg, rho_s) (r_s + gamma_s v_{s+1} - V(x_s))

``gamma_t`` is the per-step discount ``discounts[t]`` (0 where the episode ended after
step t), so an episode end inside the unroll cuts both the bootstrap and the trace.
Everything here is computed without gradient: the targets are constants of the loss.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class VTraceReturns(NamedTuple):
    vs: Tensor  # [T, B, ...] V-trace value targets v_s
    pg_advantages: Tensor  # [T, B, ...] clipped-rho advantages for the policy gradient


class VTraceFromLogitsReturns(NamedTuple):
    vs: Tensor  # [T, B]
    pg_advantages: Tensor  # [T, B]
    log_rhos: Tensor  # [T, B] log pi(a_t|x_t) - log mu(a_t|x_t), no gradient
    behaviour_action_log_probs: Tensor  # [T, B] log mu(a_t|x_t)
    target_action_log_probs: Tensor  # [T, B] log pi(a_t|x_t), keeps the gradient of target_logits


def _check_shapes(
    log_rhos: Tensor, discounts: Tensor, rewards: Tensor, values: Tensor, bootstrap_value: Tensor
) -> None:
    """Raise ``ValueError`` unless all inputs are ``[T, B, ...]`` alike and bootstrap is ``[B, ...]``."""
    if values.dim() < 2:
        raise ValueError(f"V-trace expects time-major [T, B, ...] tensors, got values of shape {tuple(values.shape)}")
    for name, tensor in (("log_rhos", log_rhos), ("discounts", discounts), ("rewards", rewards)):
        if tensor.shape != values.shape:
            raise ValueError(
                f"V-trace: {name} has shape {tuple(tensor.shape)} but values has {tuple(values.shape)}; "
                "all of log_rhos, discounts, rewards, values must be [T, B, ...] with the same shape"
            )
    if bootstrap_value.shape != values.shape[1:]:
        raise ValueError(
            f"V-trace: bootstrap_value has shape {tuple(bootstrap_value.shape)}, expected values.shape[1:] = "
            f"{tuple(values.shape[1:])} (the value of the state after the last step, [B, ...])"
        )


def _clip(rhos: Tensor, threshold: float | None) -> Tensor:
    """``min(threshold, rhos)``; ``None`` means no truncation."""
    return rhos if threshold is None else torch.clamp(rhos, max=threshold)


@torch.no_grad()
def from_importance_weights(
    log_rhos: Tensor,
    discounts: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: float | None = 1.0,
    clip_pg_rho_threshold: float | None = 1.0,
    clip_c_threshold: float | None = 1.0,
    lambda_: float = 1.0,
) -> VTraceReturns:
    """V-trace targets from log importance weights.

    Args:
        log_rhos: [T, B, ...] ``log pi(a_t|x_t) - log mu(a_t|x_t)``.
        discounts: [T, B, ...] ``gamma_t``, zero where the episode ended after step t.
        rewards: [T, B, ...] ``r_t``, the reward that followed action ``a_t``.
        values: [T, B, ...] ``V(x_t)`` from the learner's current baseline.
        bootstrap_value: [B, ...] ``V(x_T)``, the value of the state after the last step.
        clip_rho_threshold: ``rho_bar`` of delta_t V (``None``: no clipping).
        clip_pg_rho_threshold: ``rho_bar_pg`` of the policy-gradient advantage (``None``: no clipping).
        clip_c_threshold: ``c_bar`` of the trace coefficients (``None``: no clipping).
        lambda_: the Retrace-style discount of the traces (remark 2 of the paper), in [0, 1].

    Returns:
        ``VTraceReturns(vs [T, B, ...], pg_advantages [T, B, ...])``, both without gradient.
    """
    _check_shapes(log_rhos, discounts, rewards, values, bootstrap_value)
    rhos = torch.exp(log_rhos)
    clipped_rhos = _clip(rhos, clip_rho_threshold)
    cs = lambda_ * _clip(rhos, clip_c_threshold)

    # V(x_{t+1}) for every t: the next row of values, and the bootstrap after the last step.
    values_t_plus_1 = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
    deltas = clipped_rhos * (rewards + discounts * values_t_plus_1 - values)

    # Backward recursion of v_s - V(x_s) (paper, section 4.1): one vectorised step per t,
    # so the cost is T small kernels whatever B is.
    acc = torch.zeros_like(bootstrap_value)
    vs_minus_v = []
    for t in reversed(range(values.shape[0])):
        acc = deltas[t] + discounts[t] * cs[t] * acc
        vs_minus_v.append(acc)
    vs = torch.stack(vs_minus_v[::-1], dim=0) + values

    # The policy gradient uses v_{s+1} (not V(x_{s+1})) as the estimate of the next state's value.
    vs_t_plus_1 = torch.cat([vs[1:], bootstrap_value.unsqueeze(0)], dim=0)
    pg_advantages = _clip(rhos, clip_pg_rho_threshold) * (rewards + discounts * vs_t_plus_1 - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


def action_log_probs(logits: Tensor, actions: Tensor) -> Tensor:
    """``log softmax(logits)[actions]`` of a categorical policy: logits [T, B, A], actions int64 [T, B] -> [T, B]."""
    if logits.dim() != actions.dim() + 1:
        raise ValueError(
            f"action_log_probs: logits {tuple(logits.shape)} must have exactly one more dimension "
            f"than actions {tuple(actions.shape)}"
        )
    return torch.gather(F.log_softmax(logits, dim=-1), -1, actions.unsqueeze(-1)).squeeze(-1)


def from_logits(
    behaviour_logits: Tensor,
    target_logits: Tensor,
    actions: Tensor,
    discounts: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: float | None = 1.0,
    clip_pg_rho_threshold: float | None = 1.0,
    clip_c_threshold: float | None = 1.0,
    lambda_: float = 1.0,
) -> VTraceFromLogitsReturns:
    """V-trace for a categorical policy, given the logits of the behaviour and target policies.

    Args:
        behaviour_logits: [T, B, A] logits of mu, the policy that acted.
        target_logits: [T, B, A] logits of pi, the learner's policy (gradient kept in the returned log-probs).
        actions: [T, B] int64 actions taken.
        discounts, rewards, values: [T, B]; bootstrap_value: [B]; the thresholds and ``lambda_``
            as in :func:`from_importance_weights`.
    """
    target_action_log_probs = action_log_probs(target_logits, actions)
    behaviour_action_log_probs = action_log_probs(behaviour_logits, actions)
    log_rhos = (target_action_log_probs - behaviour_action_log_probs).detach()
    returns = from_importance_weights(
        log_rhos,
        discounts,
        rewards,
        values,
        bootstrap_value,
        clip_rho_threshold=clip_rho_threshold,
        clip_pg_rho_threshold=clip_pg_rho_threshold,
        clip_c_threshold=clip_c_threshold,
        lambda_=lambda_,
    )
    return VTraceFromLogitsReturns(
        vs=returns.vs,
        pg_advantages=returns.pg_advantages,
        log_rhos=log_rhos,
        behaviour_action_log_probs=behaviour_action_log_probs,
        target_action_log_probs=target_action_log_probs,
    )
