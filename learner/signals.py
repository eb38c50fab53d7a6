"""Graceful stop: the first SIGINT (Ctrl-C) or SIGTERM asks the loop to finish its update, save a
checkpoint and shut down; a second SIGINT interrupts at once."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager; ``requested`` turns true at the first signal. Handlers are restored on exit.

    Signal handlers can only be installed from the main thread; elsewhere (e.g. inside a Ray
    actor or a test thread) this does nothing and ``requested`` stays false.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: finishing this update, then saving a checkpoint", signal.Signals(signum).name)
        print(f"{signal.Signals(signum).name}: stopping after this update (Ctrl-C again to abort)", flush=True)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
