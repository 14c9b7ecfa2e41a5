"""A run as the store hands it out: statuses and the typed, frozen `Run`.

Every reader (pages, views, the command line, searches, the study) gets a `Run` with its
`RunConfig` parsed once, its JSON columns decoded and its model path absolute, instead of
a row of strings each of them would decode again. Only the store creates Runs and only
the store writes run state; a Run is a snapshot, read again to see a change.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, RunConfig

if TYPE_CHECKING:
    from .artifacts import StoreFolder

# Run states. A run is queued until a worker claims it; the schema's CHECK constraint
# refuses any other value.
QUEUED, RUNNING, COMPLETED, FAILED, STOPPED, INTERRUPTED = (
    "queued", "running", "completed", "failed", "stopped", "interrupted")
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, STOPPED, INTERRUPTED)
ACTIVE_STATES = (QUEUED, RUNNING)
FINISHED_STATES = (COMPLETED, FAILED, STOPPED, INTERRUPTED)
# Finished states whose saved best model is as usable as a completed run's (Evaluate,
# Predict, Home's best results): a stopped or interrupted run keeps its best epoch.
MODEL_STATES = (COMPLETED, STOPPED, INTERRUPTED)


@dataclass(frozen=True)
class Run:
    """One stored run. Times are ISO-8601 UTC strings, `heartbeat_at` POSIX seconds."""

    id: int
    name: str
    status: str  # one of STATUSES
    label_mode: str | None
    config: RunConfig | None  # None when the stored config cannot be read; config_error says why
    config_error: str | None
    stored_config: dict  # the config as stored, shown as it is when it cannot be parsed
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    params: int | None
    best_epoch: int | None
    best_val_accuracy: float | None
    seed: int | None
    versions: dict  # library -> version, recorded when training starts
    device: str | None
    epochs_planned: int | None
    pid: int | None  # the process that owns a running run
    host: str | None
    heartbeat_at: float | None
    progress: dict  # the latest heartbeat: phase, epoch, batch, batches, epoch_started
    stop_requested: bool
    # Absolute, inside the store's artifacts folder; None when the run has no usable saved model
    # (model_problem then says why, when a stored path was refused).
    model_path: Path | None
    model_problem: str | None  # e.g. 'stored model path /etc/shadow is outside this store's artifacts folder; not used'
    model_epoch: int | None  # the epoch the saved model is (None: not recorded, e.g. saved by an older version)
    search_id: int | None
    source: str | None  # 'cli', 'dashboard', 'search' or 'study'; None for runs from before it was kept
    # The speed settings it trained with (store.SPEED_COLUMNS; None before they were recorded).
    mixed_precision: int | None
    xla: int | None
    steps_per_execution: int | None
    data_on_device: int | None
    replicas: int | None
    end_reason: str | None  # why it ended before its planned epochs (e.g. early stopping)
    tta_accuracy: float | None  # test accuracy with flip averaging, when measured
    note: str | None  # a person's free-text note, shown as text
    tags: list  # sorted tag strings
    archived: bool  # hidden from the default lists

    @property
    def speed(self) -> dict:
        """The recorded speed settings, column -> value (as acceleration.describe_speed reads them)."""
        return {name: getattr(self, name) for name in SPEED_FIELDS}

    @property
    def validation(self) -> str | None:
        """The config's validation setting ('test' or 'holdout'), also for a config that cannot be parsed."""
        return self.config.validation if self.config is not None else self.stored_config.get("validation")


_FIELDS = {f.name for f in dataclasses.fields(Run)}
SPEED_FIELDS = ("mixed_precision", "xla", "steps_per_execution", "data_on_device", "replicas")


def run_from_row(row: dict[str, Any], folder: StoreFolder) -> Run:
    """A Run from a `runs` row; columns this code does not know (a newer schema) are left out.

    Its stored model path is used only inside the store's artifacts `folder`
    (lsc_core.artifacts); otherwise `model_path` is None and `model_problem` says why.
    """
    values = {key: value for key, value in row.items() if key in _FIELDS}
    config, problem = _parse_config(row.get("config"))
    model_path, model_problem = folder.model_path(row.get("model_path"))
    epoch = row.get("model_epoch")
    values.update(config=config, config_error=problem, stored_config=json_object(row.get("config")),
                  versions=json_object(row.get("versions")), progress=json_object(row.get("progress")),
                  stop_requested=bool(row.get("stop_requested")), tags=json_list(row.get("tags")),
                  archived=bool(row.get("archived")), model_path=model_path, model_problem=model_problem,
                  # only a whole epoch number is one (the column is typeless to SQLite)
                  model_epoch=epoch if isinstance(epoch, int) and epoch > 0 else None)
    return Run(**values)


def _parse_config(text: str | None) -> tuple[RunConfig | None, str | None]:
    try:
        return RunConfig.from_json(text or ""), None
    except (ConfigError, TypeError, ValueError) as exc:  # e.g. a config written by a newer version
        return None, str(exc) or type(exc).__name__


def json_list(text: str | None) -> list:
    """A JSON list column (tags) as a list; [] when empty or written by something else."""
    try:
        value = json.loads(text) if text else []
    except (json.JSONDecodeError, TypeError):
        return []
    return value if isinstance(value, list) else []


def json_object(text: str | None) -> dict:
    """A JSON column as a dict; {} when empty or unreadable (a damaged row still lists)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
