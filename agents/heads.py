"""The actor-critic heads on top of the core: policy logits and the scalar baseline V(s).

Each is a linear map of the core output ``h [T, B, H]``, as in IMPALA, after its own hidden
``Linear -> ReLU`` layers when ``agent.head_sizes`` names some (none by default). Those layers
let the policy form conjunctions of what the core remembers and what it sees now, which a
linear map of ``h`` can express only if the cell itself has formed them; rl-starter-files'
MiniGrid agents keep one hidden layer per head. (On MiniGrid-Memory they did not help: the
barrier there was carrying the cue, not the read-out; docs/LEARNING.md.) The policy head's last
layer starts with a small orthogonal gain (``POLICY_GAIN``) so the initial policy is close to uniform; the
baseline's with gain 1, the hidden layers with ReLU's (``agents/initialisation.py``).

The baseline's last linear map works in normalised units and the head turns its output back into
returns: ``V(h) = std * (w . h + b) + mean``. With ``learner.value_norm: popart`` the learner
moves ``mean`` and ``std`` towards the value targets (``learner/popart.py``), so a core whose
output is bounded by ``tanh`` can still follow returns of any scale; otherwise they stay 0
and 1 and the head is exactly a linear map. They are buffers: they travel with the weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from agents.initialisation import BASELINE_GAIN, POLICY_GAIN, RELU_GAIN, orthogonal_


class HeadOutput(NamedTuple):
    policy_logits: Tensor  # [T, B, num_logits]
    baseline: Tensor  # [T, B]


def hidden_layers(in_features: int, sizes: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """``Linear -> ReLU`` for each of ``sizes`` and the width they end at (an empty tuple: identity)."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [orthogonal_(nn.Linear(in_features, size), gain=RELU_GAIN), nn.ReLU()]
        in_features = size
    return nn.Sequential(*layers), in_features


class ValueHead(nn.Module):
    """``h [..., H] -> V(h) [...]``: hidden layers, a linear map in normalised units, the statistics that undo it.

    PopArt rescales ``linear`` only: the hidden layers feed it features that do not depend on the statistics.
    """

    def __init__(self, hidden_size: int, hidden_sizes: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.hidden, width = hidden_layers(hidden_size, hidden_sizes)
        self.linear = orthogonal_(nn.Linear(width, 1), gain=BASELINE_GAIN)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("mean_sq", torch.ones(()))  # E[target^2]: std starts at 1
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("count", torch.zeros(()))  # statistics updates so far

    def forward(self, h: Tensor) -> Tensor:
        return self.std * self.linear(self.hidden(h)).squeeze(-1) + self.mean

    def normalise(self, value: Tensor) -> Tensor:
        """Returns -> the units of the linear map (``(value - mean) / std``)."""
        return (value - self.mean) / self.std


class ActorCriticHeads(nn.Module):
    """``h [T, B, H] -> (policy_logits [T, B, num_logits], baseline [T, B])``; the baseline reads ``h_value``
    instead where the agent gives its critic features of its own."""

    def __init__(self, hidden_size: int, num_logits: int, hidden_sizes: tuple[int, ...] = ()) -> None:
        super().__init__()
        # Separate hidden layers per head, so that the baseline's regression does not shape the policy's features.
        self.policy_hidden, width = hidden_layers(hidden_size, hidden_sizes)
        self.policy = orthogonal_(nn.Linear(width, num_logits), gain=POLICY_GAIN)
        self.baseline = ValueHead(hidden_size, hidden_sizes)

    def forward(self, h: Tensor, h_value: Tensor | None = None) -> HeadOutput:
        return HeadOutput(self.policy(self.policy_hidden(h)), self.baseline(h if h_value is None else h_value))
