"""The gate grammar of Gu et al. (2020): a variant is a primary gate followed by an auxiliary gate.

``GateSpec`` is the parsed, validated form of ``(cell, gate, **gate_options)``; the cells
read only this record. See ``docs/memory_cells.md`` for the table and the reasons behind
each default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

CELLS = ("lstm", "gru", "none")
GATES = ("standard", "tied", "chrono", "u", "r", "ur", "o", "m", "om", "or", "um")

# gate name -> (primary gate, auxiliary gate). Primary: how f is activated/initialised;
# auxiliary: how the effective forget gate g is formed from f (PAPER.md sections 2-3).
VARIANTS: dict[str, tuple[str, str]] = {
    "standard": ("sigmoid", "none"),
    "tied": ("sigmoid", "none"),
    "chrono": ("chrono", "none"),
    "u": ("uniform", "none"),
    "r": ("sigmoid", "refine"),
    "ur": ("uniform", "refine"),
    "o": ("cumax", "none"),
    "m": ("sigmoid", "master"),
    "om": ("cumax", "master"),
    "or": ("cumax", "refine"),
    "um": ("uniform", "master"),
}

# The options each primary / auxiliary gate accepts.
_PRIMARY_OPTIONS = {
    "sigmoid": ("forget_bias",),
    "chrono": ("t_max", "untied"),
    "uniform": ("trainable_bias", "extra_bias"),
    "cumax": ("chunk_size",),
}
_AUX_OPTIONS = {"none": (), "refine": (), "master": ("chunk_size",)}
_UR_OPTIONS = ("refine_bias",)  # only meaningful when a UGI forget bias meets a refine gate


@dataclass(frozen=True)
class GateSpec:
    """A validated gate variant. Field defaults are the documented defaults of the options.

    forget_bias: constant initial b_f of a sigmoid forget gate (1.0, the usual LSTM convention).
    t_max: chrono's longest expected dependency (100 ~ the horizon 1/(1 - 0.99) of RL discounting).
    untied: chrono on the classic untied LSTM (separate input gate with b_i = -b_f) instead of the tied update.
    chunk_size: cumax gates act on hidden_size / chunk_size logits, each repeated chunk_size times.
    trainable_bias: UGI's b_f is a parameter (True, most implementations) or a fixed offset (False).
    refine_bias: "separate" gives r its own bias initialised to -b_f (keeps UR's parameter count equal to the
        classic LSTM's); "shared" feeds r the negated b_f itself.
    extra_bias: add zero-initialised trainable biases to the f (and r) pre-activations on top of b_f.
    """

    cell: str
    gate: str
    primary: str
    aux: str
    untied: bool = False
    forget_bias: float = 1.0
    t_max: float = 100.0
    chunk_size: int = 1
    trainable_bias: bool = True
    refine_bias: str = "separate"
    extra_bias: bool = False


def allowed_options(cell: str, gate: str) -> tuple[str, ...]:
    """The option names that ``gate`` accepts on ``cell``."""
    if cell == "none":
        return ()
    primary, aux = VARIANTS[gate]
    names = _PRIMARY_OPTIONS[primary] + _AUX_OPTIONS[aux]
    if primary == "uniform" and aux == "refine":
        names += _UR_OPTIONS
    if cell == "gru":
        names = tuple(n for n in names if n != "untied")  # a GRU has no input gate to untie
    return tuple(dict.fromkeys(names))


def _check_value(name: str, value: Any, hidden_size: int) -> None:
    """Raise ValueError (one line, naming option, value and what is allowed) for a bad option value."""
    if name in ("untied", "trainable_bias", "extra_bias"):
        ok, allowed = isinstance(value, bool), "true or false"
    elif name == "forget_bias":
        ok, allowed = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    elif name == "t_max":
        ok, allowed = isinstance(value, int | float) and not isinstance(value, bool) and value >= 2, "a number >= 2"
    elif name == "chunk_size":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1 and hidden_size % value == 0
        allowed = f"a positive divisor of hidden_size={hidden_size}"
    else:  # refine_bias
        ok, allowed = value in ("separate", "shared"), "'separate' or 'shared'"
    if not ok:
        raise ValueError(f"gate option {name}={value!r} is invalid: expected {allowed}")


def parse_gate(cell: str, gate: str, hidden_size: int, options: dict[str, Any]) -> GateSpec:
    """Validate ``cell``, ``gate`` and ``options`` and return the ``GateSpec``.

    Raises:
        ValueError: in one line naming the valid choices, for an unknown cell, gate or option,
            or an invalid option value.
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; valid cells: {', '.join(CELLS)}")
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; valid gates: {', '.join(GATES)}")
    if cell == "none" and gate != "standard":
        raise ValueError(f"cell 'none' (memoryless) takes only gate 'standard', got {gate!r}")
    allowed = allowed_options(cell, gate)
    for name, value in options.items():
        if name not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            raise ValueError(f"unknown option {name!r} for {cell}/{gate}; valid options: {valid}")
        _check_value(name, value, hidden_size)
    primary, aux = VARIANTS[gate]
    # The classic LSTM (lstm/standard) is the one untied variant; a GRU's update is always tied.
    spec = GateSpec(cell=cell, gate=gate, primary=primary, aux=aux, untied=(cell, gate) == ("lstm", "standard"))
    return replace(spec, **options)
