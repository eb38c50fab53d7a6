"""PopArt: value targets in normalised units, with the baseline's outputs preserved exactly (Hessel et al. 2019).

The baseline head computes ``V(h) = std * (w . h + b) + mean`` (``agents.heads.ValueHead``).
The learner regresses ``w . h + b`` towards ``(vs - mean) / std`` and scales the
policy-gradient advantages by ``1 / std``, so the loss has the same size whether a task pays
0/1 once per episode or +1 every step for 500 steps. After each optimiser step the
statistics follow the new targets and ``w, b`` are rescaled so that ``V(h)`` is unchanged
for every ``h``: the actors' baselines never jump when the statistics move.

    mean' = (1 - beta) mean + beta E[vs]         beta = max(step_size, 1 / n), n updates so far
    sq'   = (1 - beta) sq   + beta E[vs^2]       (the first 1/step_size updates average exactly)
    std'  = sqrt(sq' - mean'^2), clipped to [min_std, MAX_STD]
    w'    = w std / std'
    b'    = (std b + mean - mean') / std'

The statistics are buffers of the head, so they travel with the weights to the actors and
into checkpoints; there is no second channel.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

MAX_STD = 1e6  # the paper's upper clip


class Moments(NamedTuple):
    mean: Tensor  # scalar
    mean_sq: Tensor  # scalar, E[target^2]
    count: Tensor  # scalar, updates folded in so far


def updated_moments(moments: Moments, targets: Tensor, step_size: float) -> Moments:
    """Fold the mean and mean square of ``targets`` (any shape) into ``moments``.

    The step is ``max(step_size, 1 / n)``: an exact average while fewer than ``1 / step_size``
    updates have been seen (no bias towards the initial 0 and 1), an exponential average after.
    """
    count = moments.count + 1
    beta = torch.clamp(1.0 / count, min=step_size)
    targets = targets.detach().to(moments.mean.dtype)
    mean = (1 - beta) * moments.mean + beta * targets.mean()
    mean_sq = (1 - beta) * moments.mean_sq + beta * (targets * targets).mean()
    return Moments(mean, mean_sq, count)


def std_of(moments: Moments, min_std: float) -> Tensor:
    """``sqrt(E[x^2] - E[x]^2)`` clipped to ``[min_std, MAX_STD]``."""
    variance = (moments.mean_sq - moments.mean * moments.mean).clamp(min=0.0)
    return variance.sqrt().clamp(min_std, MAX_STD)


def preserved_linear(
    weight: Tensor, bias: Tensor, old_mean: Tensor, old_std: Tensor, new_mean: Tensor, new_std: Tensor
) -> tuple[Tensor, Tensor]:
    """``(w', b')`` with ``new_std * (w' . h + b') + new_mean == old_std * (w . h + b) + old_mean`` for all h."""
    return weight * (old_std / new_std), (old_std * bias + old_mean - new_mean) / new_std


@torch.no_grad()
def update_value_head(head: torch.nn.Module, targets: Tensor, step_size: float, min_std: float) -> None:
    """Move ``head``'s statistics towards ``targets`` and rescale its linear layer to keep ``V(h)``.

    ``head`` is an ``agents.heads.ValueHead``: buffers ``mean``, ``mean_sq``, ``count``, ``std``
    and a linear layer ``linear`` producing the normalised value.
    """
    old = Moments(head.mean, head.mean_sq, head.count)
    new = updated_moments(old, targets, step_size)
    new_std = std_of(new, min_std)
    weight, bias = preserved_linear(head.linear.weight, head.linear.bias, head.mean, head.std, new.mean, new_std)
    head.linear.weight.copy_(weight)
    head.linear.bias.copy_(bias)
    head.mean.copy_(new.mean)
    head.mean_sq.copy_(new.mean_sq)
    head.count.copy_(new.count)
    head.std.copy_(new_std)
