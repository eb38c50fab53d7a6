"""The LSTM core with every gate variant of Gu et al. (2020).

Tied update (PAPER.md section 1), used by every variant except the classic LSTM:

    c_t = g_t * c_{t-1} + (1 - g_t) * u_t,   u_t = tanh(L_u),   h_t = o_t * tanh(c_t),   o_t = sigma(L_o)

The classic untied LSTM (``lstm/standard``, and chrono with ``untied=True``) uses
``c_t = f_t * c_{t-1} + i_t * u_t`` with ``i_t = sigma(L_i)`` and equals ``torch.nn.LSTMCell``
given the same weights (its two bias vectors summed into ours).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from memory_cells.base import Gates, RecurrentCell, State, effective_forget
from memory_cells.recurrent_product import RecurrentProduct
from memory_cells.spec import GateSpec


class GatedLSTMCell(RecurrentCell):
    """An LSTM cell whose forget/input gating is the variant ``spec``.

    Parameters: ``weight_ih [W, I]``, ``weight_hh [W, H]`` and the per-slot biases in
    ``gate_bias`` (``bias_<slot>``), with ``W`` the sum of the slot widths (``4H`` for the
    classic LSTM and for UR). State: ``(h [B, H], c [B, H])``.
    """

    def __init__(self, spec: GateSpec, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.init_gate_weights(spec, input_size, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """``(h, c)``, both zeros ``[batch_size, H]``."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.weight_hh.dtype)
        return zeros, zeros.clone()

    def project_inputs(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b``: ``[..., I] -> [..., W]``."""
        return F.linear(x, self.weight_ih, self.gate_bias())

    def recurrent_step(
        self, xp: Tensor, state: State, collect_gates: bool, product: RecurrentProduct | None = None
    ) -> tuple[Tensor, State, Gates]:
        """One LSTM step from ``xp [B, W]`` (see the module docstring for the equations)."""
        h, c = state
        product = product or RecurrentProduct(self.weight_hh, deferred=False)
        z = dict(zip(self.slots, product(h, xp).split(self.widths, dim=1), strict=True))
        f, g, aux = effective_forget(self.spec, z["f"], z.get("r"), z.get("m"))
        u = torch.tanh(z["u"])
        # Tied: lerp(u, c, g) = u + g * (c - u) = g * c + (1 - g) * u in one fused op.
        c = g * c + torch.sigmoid(z["i"]) * u if self.spec.untied else torch.lerp(u, c, g)
        h = torch.sigmoid(z["o"]) * torch.tanh(c)
        return h, (h, c), ({"f": f, "g": g, **aux} if collect_gates else {})
