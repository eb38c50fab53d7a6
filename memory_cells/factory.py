"""``make_cell``: build a memory cell by name, as the config names it (``agent.core.cell/gate/options``)."""

from __future__ import annotations

from typing import Any

from memory_cells.base import RecurrentCell
from memory_cells.feedforward import FeedForwardCell
from memory_cells.gru import GatedGRUCell
from memory_cells.lstm import GatedLSTMCell
from memory_cells.spec import parse_gate


def make_cell(cell: str, gate: str, input_size: int, hidden_size: int, **gate_options: Any) -> RecurrentCell:
    """Build ``cell`` (``lstm``, ``gru``, ``none``) with ``gate`` (one of ``memory_cells.GATES``).

    Args:
        cell: the core type; ``none`` is the memoryless control (gate ``standard`` only).
        gate: the variant; ``standard`` is the classic LSTM / ``torch.nn.GRUCell``, ``ur`` the UR cell.
        input_size: I, the width of the inputs.
        hidden_size: H, the width of h (and c).
        **gate_options: the variant's options (see ``memory_cells.spec.GateSpec``).
    Raises:
        ValueError: naming the valid choices, for an unknown cell, gate, option or option value.
    """
    spec = parse_gate(cell, gate, hidden_size, gate_options)
    if cell == "none":
        return FeedForwardCell(input_size, hidden_size)
    if cell == "lstm":
        return GatedLSTMCell(spec, input_size, hidden_size)
    return GatedGRUCell(spec, input_size, hidden_size)
