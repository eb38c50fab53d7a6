"""The actor-critic heads on top of the core: policy logits and the scalar baseline V(s).

Both are single linear maps of the core output ``h [T, B, H]``, as in IMPALA. The policy
head starts with a small orthogonal gain (``POLICY_GAIN``) so the initial policy is close
to uniform; the baseline head with gain 1 (``agents/initialisation.py``).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from agents.initialisation import BASELINE_GAIN, POLICY_GAIN, orthogonal_


class HeadOutput(NamedTuple):
    policy_logits: Tensor  # [T, B, num_logits]
    baseline: Tensor  # [T, B]


class ActorCriticHeads(nn.Module):
    """``h [T, B, H] -> (policy_logits [T, B, num_logits], baseline [T, B])``."""

    def __init__(self, hidden_size: int, num_logits: int) -> None:
        super().__init__()
        self.policy = orthogonal_(nn.Linear(hidden_size, num_logits), gain=POLICY_GAIN)
        self.baseline = orthogonal_(nn.Linear(hidden_size, 1), gain=BASELINE_GAIN)

    def forward(self, h: Tensor) -> HeadOutput:
        return HeadOutput(self.policy(h), self.baseline(h).squeeze(-1))
