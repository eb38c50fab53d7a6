"""The memoryless control: a feed-forward layer of the core's width with an empty state.

``h_t = tanh(W x_t + b)``. Its state is the empty tuple ``()``, so the agent, ``unroll`` and the
learner run it through exactly the code paths of the recurrent cells; any gain of a gated
cell over it is what memory buys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memory_cells.base import Gates, RecurrentCell, State, uniform_weight
from memory_cells.recurrent_product import RecurrentProduct


class FeedForwardCell(RecurrentCell):
    """``cell=none``: ``h = tanh(x W^T + b)``, ``W [H, I]``; no state, no gates."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight = uniform_weight(hidden_size, input_size, hidden_size)
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The empty state ``()``."""
        return ()

    def project_inputs(self, x: Tensor) -> Tensor:
        """``tanh(x W^T + b)``: ``[..., I] -> [..., H]`` (the whole layer; nothing is left for the step)."""
        return torch.tanh(nn.functional.linear(x, self.weight, self.bias))

    def recurrent_step(
        self, xp: Tensor, state: State, collect_gates: bool, product: RecurrentProduct | None = None
    ) -> tuple[Tensor, State, Gates]:
        """The output is the projected input itself; the state stays ``()`` (there is no recurrent product)."""
        return xp, (), {}
