"""The actor-critic heads on top of the core: policy logits and the scalar baseline V(s).

Both are single linear maps of the core output ``h [T, B, H]``, as in IMPALA. The policy
head starts with a small orthogonal gain (``POLICY_GAIN``) so the initial policy is close
to uniform; the baseline head with gain 1 (``agents/initialisation.py``).

The baseline's linear map works in normalised units and the head turns its output back into
returns: ``V(h) = std * (w . h + b) + mean``. With ``learner.value_norm: popart`` the learner
moves ``mean`` and ``std`` towards the value targets (``learner/popart.py``), so a core whose
output is bounded by ``tanh`` can still follow returns of any scale; otherwise they stay 0
and 1 and the head is exactly a linear map. They are buffers: they travel with the weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from agents.initialisation import BASELINE_GAIN, POLICY_GAIN, orthogonal_


class HeadOutput(NamedTuple):
    policy_logits: Tensor  # [T, B, num_logits]
    baseline: Tensor  # [T, B]


class ValueHead(nn.Module):
    """``h [..., H] -> V(h) [...]``: a linear map in normalised units and the statistics that undo it."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = orthogonal_(nn.Linear(hidden_size, 1), gain=BASELINE_GAIN)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("mean_sq", torch.ones(()))  # E[target^2]: std starts at 1
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("count", torch.zeros(()))  # statistics updates so far

    def forward(self, h: Tensor) -> Tensor:
        return self.std * self.linear(h).squeeze(-1) + self.mean

    def normalise(self, value: Tensor) -> Tensor:
        """Returns -> the units of the linear map (``(value - mean) / std``)."""
        return (value - self.mean) / self.std


class ActorCriticHeads(nn.Module):
    """``h [T, B, H] -> (policy_logits [T, B, num_logits], baseline [T, B])``."""

    def __init__(self, hidden_size: int, num_logits: int) -> None:
        super().__init__()
        self.policy = orthogonal_(nn.Linear(hidden_size, num_logits), gain=POLICY_GAIN)
        self.baseline = ValueHead(hidden_size)

    def forward(self, h: Tensor) -> HeadOutput:
        return HeadOutput(self.policy(h), self.baseline(h))
