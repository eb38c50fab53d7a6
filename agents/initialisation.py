"""Initialisation of the agent's own layers (torso and heads), never the memory cell's.

Orthogonal weights and zero biases (Saxe et al. 2014), the convention of CleanRL and
OpenAI Baselines for actor-critics: gain ``sqrt(2)`` before a ReLU, 1 for the baseline
head, and a small gain (0.01) for the policy head so that the initial policy is close
to uniform and the entropy starts near its maximum.

The memory cell initialises itself (UGI, chrono and forget biases are the point of the
paper), so these helpers are applied to the torso and the heads one module at a time and
never to the agent as a whole.
"""

from __future__ import annotations

import math

from torch import nn

RELU_GAIN = math.sqrt(2.0)
POLICY_GAIN = 0.01
BASELINE_GAIN = 1.0


def orthogonal_(module: nn.Module, gain: float) -> nn.Module:
    """Orthogonal weights (gain ``gain``) and zero biases for every Linear/Conv2d inside ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            # Conv2d weights [out, in, kh, kw] are treated as [out, in*kh*kw] by orthogonal_.
            nn.init.orthogonal_(layer.weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
