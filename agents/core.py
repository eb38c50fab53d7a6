"""The agent's core: ``num_layers`` memory cells stacked (``memory_cells.make_cell``).

The cells keep their own initialisation (UGI, chrono, forget biases): nothing here touches
their parameters. ``cell: none`` is the memory cells' memoryless control, whose state is
``()``. The layers' states are concatenated into one flat tuple, layer 0 first, so actors
and the Trajectory record carry the whole core state as ``[B, ...]`` tensors without
knowing how many layers there are.

Each layer is unrolled over the whole ``[T, B]`` input before the next one, with the same
``is_first`` resets: a layer at step t reads only the layer below at step t, so this
equals stepping the stack one time step at a time, and lets ``memory_cells.unroll`` run
each cell over T in one call.

Where the core runs on CUDA (``agent.core.compile: auto``, or anywhere with ``on``) each layer is
unrolled by ``memory_cells.CompiledUnroll`` instead, which gives the same results with the gate
arithmetic fused; it is a function held beside the layers, not a wrapper around them, so the
``state_dict`` keys (and checkpoints) are the same either way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from configs.schema import CoreConfig
from memory_cells import CompiledUnroll, make_cell, unroll, use_compiled

State = tuple[Tensor, ...]


def gate_key(layer: int, name: str) -> str:
    """``f`` for layer 0, ``layer1/f`` for layer 1, ... (the ``AgentOutput.gates`` convention)."""
    return name if layer == 0 else f"layer{layer}/{name}"


class Core(nn.Module):
    """``num_layers`` cells of ``hidden_size`` units over ``[T, B, input_size]`` inputs."""

    def __init__(self, input_size: int, config: CoreConfig) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        sizes = [input_size] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            make_cell(config.cell, config.gate, size, config.hidden_size, **dict(config.options)) for size in sizes
        )
        self._state_lengths = [len(layer.initial_state(1)) for layer in self.layers]
        self.compile_choice = config.compile
        # Compiles nothing until it is first called.
        self.compiled_unroll = CompiledUnroll(chunk_steps=config.compile_chunk or None)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """All layers' initial states concatenated, layer 0 first, each ``[batch_size, ...]``."""
        return tuple(tensor for layer in self.layers for tensor in layer.initial_state(batch_size, device))

    @property
    def num_state_tensors(self) -> int:
        """How many tensors ``initial_state`` returns (all layers together)."""
        return sum(self._state_lengths)

    def split_state(self, state: State) -> list[State]:
        """The flat state tuple -> one tuple per layer."""
        if len(state) != self.num_state_tensors:
            raise ValueError(f"core state has {len(state)} tensors, expected {self.num_state_tensors}")
        parts, start = [], 0
        for length in self._state_lengths:
            parts.append(tuple(state[start : start + length]))
            start += length
        return parts

    def forward(
        self, x: Tensor, is_first: Tensor, state: State, collect_gates: bool = False
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``x [T, B, I]``, ``is_first [T, B]`` bool -> ``(h [T, B, H], new_state, gates {name: [T, B, H]})``.

        ``gates`` is empty unless ``collect_gates`` (and always for the memoryless cell).
        """
        new_state: list[Tensor] = []
        gates: dict[str, Tensor] = {}
        run = self.compiled_unroll if use_compiled(self.compile_choice, x.device) else unroll
        for index, (layer, layer_state) in enumerate(zip(self.layers, self.split_state(state), strict=True)):
            if collect_gates:
                x, layer_state, layer_gates = run(layer, x, is_first, layer_state, collect_gates=True)
                gates.update({gate_key(index, name): value for name, value in layer_gates.items()})
            else:
                x, layer_state = run(layer, x, is_first, layer_state)
            new_state.extend(layer_state)
        return x, tuple(new_state), gates
