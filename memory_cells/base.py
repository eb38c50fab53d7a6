"""What every memory cell shares: the step interface and the effective forget gate of a variant.

A cell splits its step in two so that ``unroll`` can hoist the input half out of the time loop:
``project_inputs(x)`` is the input affine map of all gates (one matmul for all T steps), and
``recurrent_step(xp, state, collect_gates)`` adds the recurrent half and applies the gates.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memory_cells.bias import GateBias, slot_widths
from memory_cells.gates import chunked_cumax, master_gate, refine_gate
from memory_cells.recurrent_product import RecurrentProduct
from memory_cells.spec import GateSpec

State = tuple[Tensor, ...]
Gates = dict[str, Tensor]


def effective_forget(
    spec: GateSpec, z_f: Tensor, z_r: Tensor | None = None, z_m: Tensor | None = None
) -> tuple[Tensor, Tensor, Gates]:
    """The forget gate f and the effective forget gate g of a variant (PAPER.md sections 2-3).

    Args:
        spec: the variant.
        z_f: forget pre-activation ``[B, H]`` (``[B, H / chunk_size]`` for a cumax primary gate).
        z_r: refine pre-activation ``[B, H]`` (refine variants only).
        z_m: master pre-activation ``[B, H / chunk_size]`` (master variants only).
    Returns:
        ``(f, g, gates)``: f and g ``[B, H]``; gates holds ``r`` or ``m`` when the variant has one.
    """
    f = chunked_cumax(z_f, spec.chunk_size) if spec.primary == "cumax" else torch.sigmoid(z_f)
    if spec.aux == "refine":
        r = torch.sigmoid(z_r)
        return f, refine_gate(f, r), {"r": r}
    if spec.aux == "master":
        m = chunked_cumax(z_m, spec.chunk_size)
        return f, master_gate(f, m), {"m": m}
    return f, f, {}


def uniform_weight(rows: int, cols: int, hidden_size: int) -> nn.Parameter:
    """A ``[rows, cols]`` weight from ``U[-1/sqrt(H), 1/sqrt(H)]``, torch.nn.LSTMCell's initialisation."""
    bound = hidden_size**-0.5
    return nn.Parameter(torch.empty(rows, cols).uniform_(-bound, bound))


class RecurrentCell(nn.Module):
    """Base class: ``forward`` and ``step_with_gates`` from ``project_inputs`` + ``recurrent_step``."""

    input_size: int
    hidden_size: int

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The zero state: a tuple of ``[batch_size, ...]`` tensors."""
        raise NotImplementedError

    def init_gate_weights(self, spec: GateSpec, input_size: int, hidden_size: int) -> None:
        """The parameters every gated cell has: ``weight_ih [W, I]``, ``weight_hh [W, H]`` and one bias
        per gate slot (``memory_cells.bias``), ``W`` the sum of the slot widths."""
        self.spec, self.input_size, self.hidden_size = spec, input_size, hidden_size
        widths = slot_widths(spec, hidden_size)
        self.slots, self.widths = tuple(widths), tuple(widths.values())
        self.weight_ih = uniform_weight(sum(self.widths), input_size, hidden_size)
        self.weight_hh = uniform_weight(sum(self.widths), hidden_size, hidden_size)
        self.gate_bias = GateBias(spec, widths)

    def project_inputs(self, x: Tensor) -> Tensor:
        """The input half of every gate pre-activation, biases included: ``[..., I] -> [..., W]``."""
        raise NotImplementedError

    def recurrent_step(
        self, xp: Tensor, state: State, collect_gates: bool, product: RecurrentProduct | None = None
    ) -> tuple[Tensor, State, Gates]:
        """One step from projected inputs ``xp [B, W]``: ``(h [B, H], new_state, gates)``.

        ``gates`` maps ``f``, ``g`` (and ``r``/``m`` where they exist) to ``[B, H]`` activations
        when ``collect_gates``, and is empty otherwise. ``product`` computes ``xp + h W_hh^T``;
        ``unroll`` passes one that defers the weight gradient (plain autograd when None).
        """
        raise NotImplementedError

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One step: ``x [B, I]`` -> ``(h [B, H], new_state)``."""
        h, state, _ = self.recurrent_step(self.project_inputs(x), state, False)
        return h, state

    def step_with_gates(self, x: Tensor, state: State) -> tuple[Tensor, State, Gates]:
        """One step that also reports this step's gate activations ``{name: [B, H]}``."""
        return self.recurrent_step(self.project_inputs(x), state, True)
