"""Memory cells: LSTM and GRU cores with every gate variant of Gu et al. (ICML 2020), plus ``unroll``.

``make_cell(cell, gate, input_size, hidden_size, **gate_options)`` builds one;
``unroll(cell, x [T, B, I], is_first [T, B], state)`` runs it with episode resets;
``CompiledUnroll()`` is the same unroll through ``torch.compile`` (the CUDA fast path).
"""

from memory_cells.base import RecurrentCell
from memory_cells.compiled import CompiledUnroll, use_compiled
from memory_cells.factory import make_cell
from memory_cells.spec import CELLS, GATES, GateSpec, allowed_options
from memory_cells.unroll import unroll

__all__ = [
    "CELLS",
    "GATES",
    "CompiledUnroll",
    "GateSpec",
    "RecurrentCell",
    "allowed_options",
    "make_cell",
    "unroll",
    "use_compiled",
]
