"""The gate biases of a cell, one tensor per pre-activation slot, initialised as the variant prescribes.

A cell's pre-activations are laid out in slots (e.g. LSTM ``i|r|m, f, u, o``). Each slot has
its own bias tensor ``bias_<slot>`` so that the open choices of PAPER.md (trainable or fixed
UGI bias, shared or separate refine bias, extra zero biases) change only which tensors are
parameters; ``GateBias()`` concatenates them into the ``[W]`` vector added to the input projection.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memory_cells.gates import chrono_bias, uniform_gate_bias
from memory_cells.spec import GateSpec


def slot_widths(spec: GateSpec, hidden_size: int) -> dict[str, int]:
    """The pre-activation slots of a cell, in order, with their widths.

    LSTM: ``[aux,] f, u, o`` with aux = ``i`` (untied input gate), ``r`` (refine) or ``m`` (master),
    which puts the classic LSTM in ``torch.nn.LSTMCell``'s order (i, f, g, o). GRU: ``reset, f[, aux], u``,
    ``torch.nn.GRUCell``'s order (r, z, n) with the update gate z as f (the candidate u last, so that the
    gate slots are one contiguous block). Cumax logits are
    ``hidden_size / chunk_size`` wide.
    """
    chunked = hidden_size // spec.chunk_size
    aux = "i" if spec.untied else {"none": None, "refine": "r", "master": "m"}[spec.aux]
    widths = {"r": hidden_size, "m": chunked, "i": hidden_size}
    f_width = chunked if spec.primary == "cumax" else hidden_size
    if spec.cell == "lstm":
        slots = ([aux] if aux else []) + ["f", "u", "o"]
    else:
        slots = ["reset", "f"] + ([aux] if aux else []) + ["u"]
    return {s: f_width if s == "f" else widths.get(s, hidden_size) for s in slots}


def initial_forget_bias(spec: GateSpec, hidden_size: int, generator: torch.Generator | None = None) -> Tensor:
    """b_f at initialisation, ``[W_f]``: constant (sigmoid), chrono, UGI, or zero (cumax)."""
    if spec.primary == "chrono":
        return chrono_bias(hidden_size, spec.t_max, generator)
    if spec.primary == "uniform":
        return uniform_gate_bias(hidden_size, generator)
    if spec.primary == "sigmoid":
        return torch.full((hidden_size,), float(spec.forget_bias))
    return torch.zeros(hidden_size // spec.chunk_size)


class GateBias(nn.Module):
    """Per-slot gate biases; ``forward()`` returns their concatenation ``[W]`` in slot order."""

    def __init__(self, spec: GateSpec, widths: dict[str, int], generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.slots = tuple(widths)
        hidden_size = widths["u"]
        b_f = initial_forget_bias(spec, hidden_size, generator)
        ugi = spec.primary == "uniform"
        # UR with a shared bias feeds r the negated b_f itself (PAPER.md choice 2), so r has no tensor of its own.
        self._shared_refine = ugi and "r" in widths and spec.refine_bias == "shared"
        fixed = ugi and not spec.trainable_bias  # PAPER.md choice 1: UGI's b_f as a fixed offset
        for slot, width in widths.items():
            if slot == "r" and self._shared_refine:
                continue
            if slot == "f":
                init = b_f
            elif (slot == "i" and spec.primary == "chrono") or (slot == "r" and ugi):
                init = -b_f  # chrono: b_i = -b_f; UR: r = sigma(L_r - b_f)
            else:
                init = torch.zeros(width)
            if fixed and slot in ("f", "r"):
                self.register_buffer(f"bias_{slot}", init.clone())
            else:
                self.register_parameter(f"bias_{slot}", nn.Parameter(init.clone()))
        # PAPER.md choice 3: further zero-initialised trainable biases on the f and r pre-activations.
        self._extra = tuple(s for s in ("f", "r") if spec.extra_bias and s in widths)
        for slot in self._extra:
            self.register_parameter(f"extra_bias_{slot}", nn.Parameter(torch.zeros(widths[slot])))

    def slot_bias(self, slot: str) -> Tensor:
        """The total bias of one slot, ``[width]``."""
        bias = -self.bias_f if slot == "r" and self._shared_refine else getattr(self, f"bias_{slot}")
        if slot in self._extra:
            bias = bias + getattr(self, f"extra_bias_{slot}")
        return bias

    def forward(self) -> Tensor:
        """All biases in slot order, ``[W]``."""
        return torch.cat([self.slot_bias(s) for s in self.slots])
