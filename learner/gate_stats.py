"""Gate statistics for TensorBoard: the paper's analysis (Gu et al. 2020, Sec. 5) made visible.

Input: the gate activations the learner's replay already computed, ``{name: [T, B, H]}`` with
names ``f``, ``r``, ``g`` for the first core layer and ``layer<k>/f`` ... for the others.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

# A gate is "binary" when it is nearly closed or nearly open (the paper's measure of saturation).
BINARY_LOW = 0.05
BINARY_HIGH = 0.95


def effective_forget_gates(gates: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per layer prefix ("" or "layer<k>/"), the gate that multiplies c_{t-1}: g where a refine or
    master gate exists, else f."""
    layers: dict[str, torch.Tensor] = {}
    for name, value in gates.items():
        prefix, _, gate = name.rpartition("/")
        prefix = prefix + "/" if prefix else ""
        if gate == "g" or (gate == "f" and prefix not in layers):
            layers[prefix] = value
    return layers


def binary_fraction(g: torch.Tensor, low: float = BINARY_LOW, high: float = BINARY_HIGH) -> float:
    """Fraction of activations below ``low`` or above ``high``."""
    return float(((g < low) | (g > high)).float().mean())


def log10_timescales(g: torch.Tensor) -> torch.Tensor:
    """``log10(1 / (1 - g))``: the number of steps a unit remembers, on a log axis."""
    g = g.double().clamp(max=1 - 1e-12)  # g = 1 exactly would be an infinite timescale
    return -torch.log10(1 - g)


def gate_summaries(gates: Mapping[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Scalars (``gates/binary_frac``, ``gates/<name>_mean``) and histograms (``gates/<name>``,
    ``gates/timescale_log10``), each tag prefixed by the layer for layers after the first."""
    scalars: dict[str, float] = {}
    histograms: dict[str, np.ndarray] = {}
    for name, value in gates.items():
        flat = value.detach().float().cpu().reshape(-1)
        histograms[f"gates/{name}"] = flat.numpy()
        scalars[f"gates/{name}_mean"] = float(flat.mean())
    for prefix, g in effective_forget_gates(gates).items():
        g = g.detach().cpu()
        scalars[f"gates/{prefix}binary_frac"] = binary_fraction(g)
        histograms[f"gates/{prefix}timescale_log10"] = log10_timescales(g).reshape(-1).float().numpy()
    return scalars, histograms
