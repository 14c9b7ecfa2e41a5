"""A store that stops its run at a known epoch, as the Stop button would then (tests of resume)."""
import threading

from lsc_core.store import Store


class StopsAfterEpoch(Store):
    """Sets `stop` (the run's stop event) once epoch `epoch` is stored: the run ends there,
    stopped, with that epoch's checkpoint."""

    def __init__(self, path, epoch: int, stop: threading.Event):
        super().__init__(path)
        self.stop_epoch, self.stop = epoch, stop

    def log_epoch(self, run_id, epoch, *args, **kwargs):
        super().log_epoch(run_id, epoch, *args, **kwargs)
        if epoch == self.stop_epoch:
            self.stop.set()
