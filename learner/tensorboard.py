"""A small logger interface (``scalars``, ``histograms``, ``text``, ``close``) with a no-op twin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter


class TensorBoardLogger:
    """Writes to ``log_dir``; each instance makes a new event file, so a resumed run adds one beside
    the old. ``purge_step`` hides events the old file wrote after the checkpoint that was resumed."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step, flush_secs=10)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step)

    def histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        for tag, value in values.items():
            if value.size:
                self._writer.add_histogram(tag, value, global_step=step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self._writer.add_text(tag, text, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class NullLogger:
    """Same interface, writes nothing (tests, evaluation)."""

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        pass

    def histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        pass

    def text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
