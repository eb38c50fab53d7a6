"""The GRU core with every gate variant of Gu et al. (2020).

The GRU's update gate is the forget gate f of the variant (the UR-GRU gates it exactly like
the UR-LSTM's f); the reset gate stays a plain sigmoid (PAPER.md section 4):

    s_t = sigma(L_s(x_t, h_{t-1}))                                    (reset gate)
    n_t = tanh(W_in x_t + b_in + s_t * (W_hn h_{t-1} + b_hn))         (candidate)
    h_t = g_t * h_{t-1} + (1 - g_t) * n_t

With ``gate=standard`` (or ``tied``, the same thing: a GRU's update is always tied) this is
``torch.nn.GRUCell`` given the same weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from memory_cells.base import Gates, RecurrentCell, State, effective_forget
from memory_cells.recurrent_product import RecurrentProduct
from memory_cells.spec import GateSpec


class GatedGRUCell(RecurrentCell):
    """A GRU cell whose update gate is the variant ``spec``'s effective forget gate.

    Parameters: ``weight_ih [W, I]``, ``weight_hh [W, H]``, the per-slot input-side biases in
    ``gate_bias`` and ``bias_hn [H]``, the candidate's recurrent bias that sits inside the
    reset product. State: ``(h [B, H],)``.
    """

    def __init__(self, spec: GateSpec, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.init_gate_weights(spec, input_size, hidden_size)
        self.bias_hn = nn.Parameter(torch.zeros(hidden_size))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """``(h,)`` with h zeros ``[batch_size, H]``."""
        return (torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.weight_hh.dtype),)

    def project_inputs(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b``: ``[..., I] -> [..., W]``."""
        return F.linear(x, self.weight_ih, self.gate_bias())

    def recurrent_step(
        self, xp: Tensor, state: State, collect_gates: bool, product: RecurrentProduct | None = None
    ) -> tuple[Tensor, State, Gates]:
        """One GRU step from ``xp [B, W]`` (see the module docstring for the equations)."""
        (h,) = state
        product = product or RecurrentProduct(self.weight_hh, deferred=False)
        # The candidate slot u is last: the gate slots before it need one add, the candidate its reset product.
        split = (xp.shape[1] - self.hidden_size, self.hidden_size)
        (x_gates, x_u), (h_gates, h_u) = xp.split(split, dim=1), product(h).split(split, dim=1)
        z = dict(zip(self.slots[:-1], (x_gates + h_gates).split(self.widths[:-1], dim=1), strict=True))
        reset = torch.sigmoid(z["reset"])
        f, g, aux = effective_forget(self.spec, z["f"], z.get("r"), z.get("m"))
        n = torch.tanh(torch.addcmul(x_u, reset, h_u + self.bias_hn))
        h = torch.lerp(n, h, g)  # g * h + (1 - g) * n
        return h, (h,), ({"f": f, "g": g, **aux} if collect_gates else {})
