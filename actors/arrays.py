"""numpy <-> torch at the Ray boundary.

Ray stores numpy arrays zero-copy in its object store, whereas torch tensors are pickled and
copied on both sides. Measured on the 2-core machine for a 256-unit agent (1.35 MB of weights):
``ray.put`` 5.8 -> 3.0 ms, an actor's ``ray.get`` 3.1 -> 0.47 ms when weights travel as numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor view of ``array``, which may be read-only (Ray's object store); the caller only reads it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def state_dict_to_numpy(weights: Mapping[str, Any]) -> dict[str, Any]:
    """CPU numpy copies of a state dict's tensors (detached from parameters that keep changing)."""
    return {k: v.detach().cpu().numpy().copy() if isinstance(v, torch.Tensor) else v for k, v in weights.items()}


def state_dict_from_numpy(weights: Mapping[str, Any]) -> dict[str, Any]:
    """Tensors viewing the arrays; ``load_state_dict`` copies them into the parameters."""
    return {k: readonly_tensor(v) if isinstance(v, np.ndarray) else v for k, v in weights.items()}
