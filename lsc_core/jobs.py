"""Background training: one worker thread per server process, fed by the store.

The queue is the store itself (runs with status 'queued'), so a queue survives a
restart, a run queued by any process is picked up, and the dashboard needs no state
of its own. The worker never touches Streamlit; pages read the store.
"""
from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path
from typing import Callable

from .config import RunConfig, validate
from .store import Store, default_db_path
from .runtime import configure_device
from .train import check_checkpoint, train_run

logger = logging.getLogger(__name__)
IDLE_POLL_S = 2.0  # how often an idle worker looks for runs queued by other processes
# When the server exits (SIGTERM, Ctrl-C), how long the current run may take to stop after its
# batch and save its best model; a run still going then is left to the liveness check.
SHUTDOWN_WAIT_S = 120.0


class JobManager:
    """Owns the worker thread that trains queued runs one at a time."""

    def __init__(self, db_path, *, load_data: Callable | None = None, after_training: Callable | None = None,
                 start: bool = True):
        # Opening the store marks runs left 'running' by a dead process as interrupted.
        self.store = Store(db_path)
        self._load_data = load_data
        self._after_training = after_training
        self._data = None
        self._data_lock = threading.Lock()
        self._wake = threading.Event()
        # One stop event per claimed run, so a late stop of one run cannot stop the next.
        self._current: tuple[int, threading.Event] | None = None
        self._shutdown = threading.Event()
        self.device: str | None = None  # e.g. "GPU: NVIDIA H100", found by the worker
        self._thread = threading.Thread(target=self._work, name="lsc-trainer", daemon=True)
        # Searches cut short by a restart go on: interrupted trials run again, the rest are kept.
        from .search import resume_searches

        if not self.store.read_only:  # a read-only store is only shown
            resume_searches(self.store)
        if start:
            self._thread.start()
            # At interpreter exit (after Streamlit's own SIGTERM/SIGINT handler has stopped the
            # server), the current run is stopped cleanly before the daemon worker is killed.
            atexit.register(self.exit_cleanly)

    # -- what pages call ----------------------------------------------------------------
    def submit(self, config: RunConfig, search_id: int | None = None, source: str = "dashboard") -> int:
        """Queue a valid config (ConfigError otherwise); returns the new run's id."""
        run_id = self.store.create_run(validate(config), search_id=search_id,
                                       source="search" if search_id is not None and source == "dashboard" else source)
        self._wake.set()
        return run_id

    def resume(self, run_id: int) -> None:
        """Queue a stopped, interrupted or failed run to continue from its checkpoint, its epochs
        kept (StoreError or CheckpointError, one line, when it cannot: nothing is changed then)."""
        check_checkpoint(self.store, run_id)
        self.store.resume(run_id)
        self._wake.set()

    def extend(self, run_id: int, epochs: int) -> None:
        """Queue a completed run to train `epochs` more epochs from its checkpoint (StoreError or
        CheckpointError, one line, when it cannot: nothing is changed then)."""
        check_checkpoint(self.store, run_id)
        self.store.extend(run_id, epochs)
        self._wake.set()

    def stop(self, run_id: int) -> None:
        """Stop a run after its current batch (or drop it from the queue), whichever process trains it."""
        self.store.request_stop(run_id)
        current = self._current
        if current is not None and current[0] == run_id:
            current[1].set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the current run and the worker (tests and server exit)."""
        self._shutdown.set()
        current = self._current
        if current is not None:
            current[1].set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def exit_cleanly(self) -> None:
        """At process exit (SIGTERM, Ctrl-C): stop the worker and the run in training after its
        current batch, and wait (up to SHUTDOWN_WAIT_S) until it has ended `stopped` with its best
        model saved. A worker with no run (idle, or still importing TensorFlow or loading the
        data) is not waited for: it has nothing to save."""
        self._shutdown.set()
        self._wake.set()
        current = self._current
        if current is not None:
            current[1].set()
            self._thread.join(SHUTDOWN_WAIT_S)

    @property
    def current_run_id(self) -> int | None:
        current = self._current
        return current[0] if current is not None else None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def load_data(self):
        """The data set, loaded once per manager and shared by its runs."""
        with self._data_lock:
            if self._data is None:
                from .data import load_cifar100

                self._data = (self._load_data or load_cifar100)()
            return self._data

    # -- the worker -----------------------------------------------------------------------
    def _preload_data(self) -> None:
        """Load the data while nobody waits for it, so pages that need it open fast."""
        from .data import DataError

        try:
            self.load_data()
        except DataError:  # pages and runs that need the data report it themselves
            pass

    def _work(self) -> None:
        try:
            self.device = configure_device()
        except Exception as exc:  # TensorFlow unusable: runs will fail with the reason
            self.device = f"unavailable ({type(exc).__name__}: {exc})"
        self._preload_data()
        while not self._shutdown.is_set():
            try:
                self._train_next()
            except Exception:  # e.g. the store locked for too long: keep serving the queue
                logger.exception("the training worker hit an error; it goes on")
                self._wake.wait(IDLE_POLL_S)

    def _train_next(self) -> None:
        run = self.store.claim_next_queued()
        if run is None:
            self._wake.wait(IDLE_POLL_S)
            self._wake.clear()
            return
        self._current = (run.id, threading.Event())
        if self._shutdown.is_set():  # claimed as the process began to exit: stop it at once
            self._current[1].set()
        try:
            train_run(self.store, run.id, load_data=self.load_data, stop_event=self._current[1],
                      after_training=self._after_training)
        finally:
            self._current = None
        if run.search_id is not None:  # its search may be complete now
            from .search import trial_finished

            trial_finished(self.store, run.search_id)


def dashboard_manager() -> JobManager:
    """The dashboard's job manager for $LSC_DB and $LSC_DATA (started at first use: by serve.py at
    server start, by the first page view under `streamlit run app.py`). Completed runs get their
    test-set predictions stored, so the Evaluate page opens fast."""
    from .data import load_cifar100, resolve_data_path
    from .evaluate import store_predictions

    data = resolve_data_path()
    return manager_for(default_db_path(), load_data=lambda: load_cifar100(str(data) if data else None),
                       after_training=store_predictions)


_MANAGERS: dict[str, JobManager] = {}
_MANAGERS_LOCK = threading.Lock()


def manager_for(db_path, *, create: bool = True, **options) -> JobManager | None:
    """The one JobManager of this process for a store: one worker per store, however often asked
    (a cleared Streamlit cache must not start a second worker training beside the first).
    With create=False, None where there is none yet."""
    key = str(Path(db_path).resolve())
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(key)
        if (manager is None or not manager.alive) and create:
            manager = _MANAGERS[key] = JobManager(key, **options)
        return manager
