"""Teardown that always runs: atexit, and SIGTERM/SIGINT/SIGHUP turned into an orderly exit.

pytest fixtures add their own finalizer on top; `cleanup_stale()` before every `up()` is the
last line of defence (a SIGKILLed run leaves a lab that the next run removes first).
"""

from __future__ import annotations

import atexit
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lab import Lab

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Teardown:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.armed = True
        self._done = False
        self._lock = threading.Lock()
        self._previous = {}
        atexit.register(self.run)
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)

    def run(self) -> None:
        with self._lock:
            if not self.armed or self._done:
                return
            self._done = True
        self.lab.down()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.run()
        previous = self._previous.get(signum)
        if callable(previous) and previous not in (signal.SIG_IGN, signal.SIG_DFL):
            previous(signum, frame)  # e.g. pytest's own KeyboardInterrupt handling
        raise SystemExit(128 + signum)

    def disarm(self) -> None:
        """Leave the lab up on exit (after a successful `python -m tests.lab up`)."""
        self.armed = False
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def hold(self) -> None:
        try:
            signal.pause() if hasattr(signal, "pause") else threading.Event().wait()
        finally:
            self.run()


def install(lab: Lab) -> Teardown:
    return Teardown(lab)
