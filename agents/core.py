"""The agent's core: ``num_layers`` memory cells stacked, or the memoryless control.

The cells come from ``memory_cells.make_cell`` and keep their own initialisation (UGI,
chrono, forget biases). Their states are concatenated into one flat tuple, layer 0 first,
so actors and the Trajectory record carry the whole core state as a tuple of ``[B, ...]``
tensors without knowing how many layers there are.

Each layer is unrolled over the whole ``[T, B]`` input before the next one, with the same
``is_first`` resets: since a layer at step t only reads layer-below outputs at step t, this
equals stepping the stack one time step at a time, and lets ``memory_cells.unroll`` run
each cell over T in one call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from agents.initialisation import orthogonal_
from configs.schema import CoreConfig

State = tuple[Tensor, ...]


class MemorylessLayer(nn.Module):
    """``cell: none``: ``h = tanh(W x + b)`` of the cell's width, with the empty state ``()``.

    The control for memory experiments: the same agent and the same width, but nothing is
    carried between steps. ``tanh`` keeps the output in the range of a gated cell's ``h``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = orthogonal_(nn.Linear(input_size, hidden_size), gain=1.0)

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., I] -> h [..., H]``."""
        return torch.tanh(self.linear(x))


def _gate_key(layer: int, name: str) -> str:
    """``f`` for layer 0, ``layer1/f`` for layer 1, ... (the AgentOutput.gates convention)."""
    return name if layer == 0 else f"layer{layer}/{name}"


class Core(nn.Module):
    """``num_layers`` cells of ``hidden_size`` units over ``[T, B, input_size]`` inputs."""

    def __init__(self, input_size: int, config: CoreConfig) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.memoryless = config.cell == "none"
        sizes = [input_size] + [config.hidden_size] * (config.num_layers - 1)
        if self.memoryless:
            # The gate and its options describe a cell; the memoryless control has none to apply them to.
            self.layers = nn.ModuleList(MemorylessLayer(size, config.hidden_size) for size in sizes)
            self._state_lengths = [0] * config.num_layers
        else:
            from memory_cells import make_cell

            options: dict[str, Any] = dict(config.options)
            self.layers = nn.ModuleList(
                make_cell(config.cell, config.gate, size, config.hidden_size, **options) for size in sizes
            )
            self._state_lengths = [len(layer.initial_state(1)) for layer in self.layers]

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """All layers' initial states concatenated, layer 0 first, each ``[batch_size, ...]``; ``()`` if memoryless."""
        if self.memoryless:
            return ()
        return tuple(tensor for layer in self.layers for tensor in layer.initial_state(batch_size, device))

    def split_state(self, state: State) -> list[State]:
        """The flat state tuple -> one tuple per layer."""
        if len(state) != sum(self._state_lengths):
            raise ValueError(f"Core state has {len(state)} tensors, expected {sum(self._state_lengths)}")
        parts, start = [], 0
        for length in self._state_lengths:
            parts.append(tuple(state[start : start + length]))
            start += length
        return parts

    def forward(
        self, x: Tensor, is_first: Tensor, state: State, collect_gates: bool = False
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [T, B, I]``, ``is_first [T, B]`` bool -> ``(h [T, B, H], new_state, gates {name: [T, B, H]})``.

        ``gates`` is empty unless ``collect_gates`` (and always for the memoryless core).
        """
        if self.memoryless:
            for layer in self.layers:
                x = layer(x)
            return x, (), {}
        from memory_cells import unroll

        new_state: list[Tensor] = []
        gates: dict[str, Tensor] = {}
        for index, (layer, layer_state) in enumerate(zip(self.layers, self.split_state(state), strict=True)):
            if collect_gates:
                x, layer_state, layer_gates = unroll(layer, x, is_first, layer_state, collect_gates=True)
                gates.update({_gate_key(index, name): value for name, value in layer_gates.items()})
            else:
                x, layer_state = unroll(layer, x, is_first, layer_state)
            new_state.extend(layer_state)
        return x, tuple(new_state), gates
