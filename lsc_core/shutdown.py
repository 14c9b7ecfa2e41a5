"""SIGTERM and SIGINT stop the current run cleanly: `stopped`, its best model saved.

The first signal sets the run's stop event: the trainer ends after its current batch (its
heartbeat thread reads the event every 0.1 s), keeps the epochs it finished and saves its
best model, as a Stop from the dashboard does. A second signal while it stops means
"now": KeyboardInterrupt, which the command line turns into one line and exit 130.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignals:
    """While active (a `with` block on the main thread), SIGTERM/SIGINT set `stop_event`.

    `received` is the first signal's number (None while none came); `exit_code` the
    conventional 128 + that number (143 for SIGTERM, 130 for SIGINT). The handlers that
    were there before are put back on leaving the block.
    """

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame) -> None:
        if self.received is None:
            self.received = number
            self.stop_event.set()
            return
        raise KeyboardInterrupt  # a second signal: stop at once

    @property
    def name(self) -> str:
        """The first signal's name, e.g. 'SIGTERM' ('' while none came)."""
        return signal.Signals(self.received).name if self.received else ""

    @property
    def exit_code(self) -> int:
        return 128 + self.received if self.received else 0
