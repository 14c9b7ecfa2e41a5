"""TensorBoard event files of a run, written from the store so TensorBoard shows its exact figures.

Layout, under the store's artifacts folder (so `tensorboard --logdir <artifacts>` lists
every run of the store, named by id and name):

    <artifacts>/<run id>/tensorboard/<run name>/train/       epoch_loss, epoch_accuracy, and
                                                              every other stored epoch column
    <artifacts>/<run id>/tensorboard/<run name>/validation/  epoch_loss, epoch_accuracy (val_*)
    <artifacts>/<run id>/tensorboard/<run name>/             hyperparameters (HParams plugin),
                                                              for search trials

The names follow Keras's own TensorBoard callback, so train and validation curves share a
chart. The files are rewritten whole from the store's `epochs` rows (a few kB), into a new
folder that then replaces the old one: what TensorBoard reads always equals the store,
also after a resumed run or an imported one.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from datetime import datetime
from pathlib import Path

from .config import flat_settings

logger = logging.getLogger(__name__)

EVENTS_DIR = "tensorboard"
_NOT_METRICS = {"run_id", "epoch"}


def run_logdir(artifacts: Path, run_id: int, name: str) -> Path:
    """The folder holding a run's event files (its last part is the run's name, made path-safe)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name or f"run-{run_id}").strip("._") or f"run-{run_id}"
    return Path(artifacts) / str(run_id) / EVENTS_DIR / safe[:80]


def write_run_events(store, run_id: int) -> Path | None:
    """(Re)write a run's event files from the store; returns their folder (None for an unknown run)."""
    run = store.get_run(run_id)
    if run is None:
        return None
    logdir = run_logdir(store.artifacts, run_id, run.name)
    fresh = logdir.with_name(f".{logdir.name}.writing")
    shutil.rmtree(fresh, ignore_errors=True)
    started = _timestamp(run.started_at) or _timestamp(run.created_at) or time.time()
    _write_scalars(fresh, store.epochs(run_id), started)
    if run.search_id is not None:
        _write_hparams(fresh, run, started)
    # Replace the whole folder: old files of a renamed or shortened run do not linger.
    for old in logdir.parent.glob("*") if logdir.parent.exists() else ():
        if old != fresh:
            shutil.rmtree(old, ignore_errors=True)
    fresh.rename(logdir)
    return logdir


def refresh(store, run_id: int) -> None:
    """`write_run_events` for the training loop: a failure is logged, never raised (the store
    holds the figures; `tensorboard-export` can write the files again)."""
    try:
        write_run_events(store, run_id)
    except Exception as exc:
        logger.warning("run %s: TensorBoard event files not written: %s: %s", run_id, type(exc).__name__, exc)


def write_all(store) -> list[Path]:
    """Event files for every run of the store that has epochs (`tensorboard-export`)."""
    return [path for run_id in sorted(store.epoch_counts()) if (path := write_run_events(store, run_id))]


def _write_scalars(logdir: Path, epochs: list[dict], started: float) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    writers = {}
    elapsed = 0.0
    try:
        for row in epochs:
            elapsed += row.get("seconds") or 0.0
            for column, value in row.items():
                if column in _NOT_METRICS or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                split, metric = ("validation", column[4:]) if column.startswith("val_") else ("train", column)
                if split not in writers:
                    writers[split] = _event_writer(logdir / split)
                writers[split].add_event(event_pb2.Event(wall_time=started + elapsed, step=int(row["epoch"]),
                                                         summary=scalar_pb(f"epoch_{metric}", float(value))))
    finally:
        for writer in writers.values():
            writer.close()


def _write_hparams(logdir: Path, run: dict, started: float) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams.summary_v2 import hparams_pb

    writer = _event_writer(logdir)
    try:
        summary = hparams_pb(hyperparameters(run.stored_config), trial_id=run.name, start_time_secs=int(started))
        writer.add_event(event_pb2.Event(wall_time=started, step=0, summary=summary))
    finally:
        writer.close()


def hyperparameters(config: dict) -> dict:
    """A run config as the scalar settings TensorBoard's HParams table can show (no None)."""
    return {key: value for key, value in flat_settings(config).items() if value is not None}


def _event_writer(logdir: Path):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    return EventFileWriter(str(logdir))


def _timestamp(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None
