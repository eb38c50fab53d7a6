"""The supervised synthetic tasks of Gu et al. (2020), section 4.1 / PAPER.md "The paper's experiments".

Both generators are time-major and draw from an explicit ``torch.Generator`` so that a seed
reproduces a batch exactly. ``make_batch``, ``task_loss``, ``chance_loss`` and ``io_sizes`` choose
between the two by name (``TASKS``), so that a runner needs no branch of its own.

- Copy: ``num_tokens`` data tokens from an alphabet of ``alphabet`` symbols, ``delay`` blanks,
  then ``num_tokens`` markers; the model must emit the data tokens at the markers. The loss is
  the cross-entropy on the marker steps only, so a model that ignores the input scores
  ``ln(alphabet)`` (2.079 nats for 8).
- Adding: ``length`` pairs (value ~ U[0, 1], marker in {0, 1}); exactly two markers, one in each
  half; the target is the sum of the two marked values, read from the last step. Predicting the
  mean 1 scores the variance of the sum, 1/6.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """One batch: ``inputs [T, B, I]`` float32 and ``targets`` (copy: int64 ``[N, B]``; adding: float32 ``[B]``)."""

    inputs: Tensor
    targets: Tensor


def copy_input_size(alphabet: int) -> int:
    """One-hot width of the copy task: the data symbols, then blank, then marker."""
    return alphabet + 2


def copy_batch(
    batch_size: int, delay: int, generator: torch.Generator, alphabet: int = 8, num_tokens: int = 10
) -> Batch:
    """A copy-task batch of length ``T = 2 * num_tokens + delay``.

    Returns:
        inputs ``[T, B, alphabet + 2]`` one-hot (codes ``0..alphabet-1`` data, ``alphabet`` blank,
        ``alphabet + 1`` marker) and targets int64 ``[num_tokens, B]``, the tokens to emit at the
        last ``num_tokens`` steps.
    """
    tokens = torch.randint(0, alphabet, (num_tokens, batch_size), generator=generator)
    blank = torch.full((delay, batch_size), alphabet, dtype=torch.int64)
    marker = torch.full((num_tokens, batch_size), alphabet + 1, dtype=torch.int64)
    codes = torch.cat([tokens, blank, marker])
    inputs = torch.nn.functional.one_hot(codes, copy_input_size(alphabet)).float()
    return Batch(inputs, tokens)


def copy_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy (nats) at the marker steps.

    Args:
        logits: ``[T, B, alphabet]`` outputs at every step; only the last ``N`` are scored.
        targets: int64 ``[N, B]``.
    """
    n = targets.shape[0]
    scored = logits[-n:]
    return torch.nn.functional.cross_entropy(scored.reshape(-1, scored.shape[-1]), targets.reshape(-1))


def copy_chance(alphabet: int = 8) -> float:
    """The loss of a model that ignores its input: ``ln(alphabet)``."""
    return math.log(alphabet)


def adding_batch(batch_size: int, length: int, generator: torch.Generator) -> Batch:
    """An adding-task batch.

    Returns:
        inputs ``[length, B, 2]`` (channel 0 the value ~ U[0, 1], channel 1 the marker) and
        targets ``[B]``, the sum of the two marked values. One marker lies in ``[0, length / 2)``,
        the other in ``[length / 2, length)``, as in Hochreiter & Schmidhuber (1997) / Arjovsky et al. (2016).
    """
    if length < 2:
        raise ValueError(f"adding task length must be >= 2, got {length}")
    values = torch.rand(length, batch_size, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, length, (batch_size,), generator=generator)
    markers = torch.zeros(length, batch_size)
    columns = torch.arange(batch_size)
    markers[first, columns] = 1.0
    markers[second, columns] = 1.0
    targets = values[first, columns] + values[second, columns]
    return Batch(torch.stack([values, markers], dim=-1), targets)


def adding_loss(prediction: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error of the prediction ``[B]`` read at the last step."""
    return torch.mean((prediction - targets) ** 2)


def adding_chance() -> float:
    """The MSE of always predicting 1 (the mean of the sum): Var(U1 + U2) = 2 / 12 = 1/6."""
    return 1.0 / 6.0


TASKS = ("copy", "adding")


def sequence_length(task: str, length: int) -> int:
    """Steps in one sequence: the copy task adds its tokens and markers to the delay."""
    return length + 20 if task == "copy" else length


def io_sizes(task: str) -> tuple[int, int]:
    """Input and output widths of a model for ``task`` (copy: one-hot in, 8 logits out; adding: 2 in, 1 out)."""
    return (copy_input_size(8), 8) if task == "copy" else (2, 1)


def make_batch(task: str, batch_size: int, length: int, generator: torch.Generator) -> Batch:
    """A batch of ``task``; ``length`` is the copy delay or the adding sequence length."""
    if task == "copy":
        return copy_batch(batch_size, length, generator)
    return adding_batch(batch_size, length, generator)


def task_loss(task: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """Copy: cross-entropy at the markers of ``outputs [T, B, 8]``; adding: MSE of the last step's scalar output."""
    if task == "copy":
        return copy_loss(outputs, targets)
    return adding_loss(outputs[-1, :, 0], targets)


def chance_loss(task: str) -> float:
    return copy_chance() if task == "copy" else adding_chance()
