"""What the Home and Runs pages show, computed from the store: tables, curves, progress.

Pure functions of the store (or of rows already read from it) that return DataFrames,
dicts and numbers, so the pages only place widgets and every figure is testable
without Streamlit. Times in the store are ISO-8601 UTC strings; durations here are
seconds.
"""
from __future__ import annotations

import functools
import io
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .acceleration import describe_speed
from .artifacts import read_without_links
from .config import ConfigError, RunConfig, flat_settings
from . import estimates
from .store import COMPLETED, MODEL_STATES, QUEUED, RUNNING, Run, Store
from .study import STUDY_BEST

RUN_COLUMNS = ["id", "name", "status", "label_mode", "params", "best_accuracy", "best_epoch", "epochs_done",
               "epochs_planned", "duration_s", "duration", "created", "source", "validation", "tags", "archived"]
CURVE_COLUMNS = ["run_id", "run", "epoch", "split", "metric", "value"]
# The split a run validates on (its best epoch and best_accuracy come from it): the
# test set, as the study did, or a hold-out part of the training set.
TEST, HOLDOUT = "test", "hold-out"
# Store column -> (split, metric) of the long-form curves; VALIDATION is the run's validation split.
VALIDATION = "validation"
# Fine runs also have the share of errors inside the right superclass (lsc_core.hierarchy).
_CURVE_FIELDS = {"loss": ("train", "loss"), "accuracy": ("train", "accuracy"),
                 "val_loss": (VALIDATION, "loss"), "val_accuracy": (VALIDATION, "accuracy"),
                 "within_superclass": ("train", "within_superclass"),
                 "val_within_superclass": (VALIDATION, "within_superclass")}
MAX_SMOOTHING = 0.99  # as TensorBoard: a weight of 1 would freeze the curve at its first value


# -- the runs table ------------------------------------------------------------------------
def _parse_time(text: str | None) -> float | None:
    """An ISO timestamp from the store as POSIX seconds; None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def run_duration(run: Run, now: float | None = None) -> float | None:
    """Seconds from start to finish; for a run still running, up to `now`."""
    started = _parse_time(run.started_at)
    if started is None:
        return None
    finished = _parse_time(run.finished_at)
    if finished is None:
        if run.status != RUNNING:
            return None
        finished = time.time() if now is None else now
    return max(0.0, finished - started)


def validation_split(run: Run) -> str:
    """The split a run's validation figures come from: 'hold-out' for a run that held out
    part of its training set, else 'test'."""
    return HOLDOUT if run.validation == "holdout" else TEST


def run_source(run: Run) -> str | None:
    """Where a run came from, when the store records it: a `source` column, else 'search' for search trials."""
    if run.source:
        return run.source
    return "search" if run.search_id is not None else None


def runs_table(store: Store, now: float | None = None) -> pd.DataFrame:
    """All runs, newest first, one row each with the columns of RUN_COLUMNS."""
    runs = store.list_runs()
    done = store.epoch_counts()
    rows = [_table_row(run, done.get(run.id, 0), now) for run in runs]
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    # Nullable integers keep "no best epoch yet" empty instead of turning the column into floats.
    for column in ("params", "best_epoch", "epochs_planned"):
        table[column] = table[column].astype("Int64")
    return table


def _table_row(run: Run, epochs_done: int, now: float | None) -> dict:
    duration = run_duration(run, now)
    return {"id": run.id, "name": run.name, "status": run.status, "label_mode": run.label_mode,
            "params": run.params, "best_accuracy": run.best_val_accuracy, "best_epoch": run.best_epoch,
            "epochs_done": epochs_done, "epochs_planned": run.epochs_planned, "duration_s": duration,
            "duration": format_duration(duration), "created": _created(run.created_at),
            "source": run_source(run) or "", "validation": validation_split(run),
            "tags": ", ".join(run.tags), "archived": bool(run.archived)}


def _created(text: str | None):
    try:
        return pd.Timestamp(text) if text else pd.NaT
    except ValueError:
        return pd.NaT


def filter_runs(table: pd.DataFrame, statuses: Iterable[str] = (), label_modes: Iterable[str] = (),
                text: str = "", tags: Iterable[str] = (), archived: bool = False) -> pd.DataFrame:
    """Rows of a runs table with one of `statuses` and `label_modes` (empty: any) whose name
    contains `text`, carrying every one of `tags`; archived runs only with `archived`, and
    then only those."""
    keep = table["archived"] == archived
    statuses, label_modes = list(statuses), list(label_modes)
    for tag in tags:
        keep &= table["tags"].map(lambda shown, tag=tag: tag in shown.split(", "))
    if statuses:
        keep &= table["status"].isin(statuses)
    if label_modes:
        keep &= table["label_mode"].isin(label_modes)
    if text.strip():
        keep &= table["name"].fillna("").str.contains(text.strip(), case=False, regex=False)
    return table[keep].reset_index(drop=True)


def settings_frame(runs: list[Run], only_differences: bool = False) -> pd.DataFrame:
    """The runs' settings side by side: one row per setting (`config.flat_settings`), one column
    per run (its label); with `only_differences`, the rows where not every run agrees."""
    labels = run_labels(runs)
    columns = {labels[run.id]: flat_settings(run.stored_config) for run in runs}
    names = list(dict.fromkeys(name for settings in columns.values() for name in settings))
    frame = pd.DataFrame({label: [_setting_text(settings.get(name, MISSING_SETTING)) for name in names]
                          for label, settings in columns.items()}, index=pd.Index(names, name="setting"))
    if only_differences and len(frame):
        frame = frame[frame.nunique(axis=1) > 1]
    return frame.reset_index()


MISSING_SETTING = object()  # a setting one run's config does not have at all (another layer count)


def _setting_text(value) -> str:
    if value is MISSING_SETTING:
        return "(none)"
    return "" if value is None else str(value)


# -- curves ---------------------------------------------------------------------------------
def run_labels(runs: Iterable[Run]) -> dict[int, str]:
    """A legend label per run: its name, with '#id' added where two runs share a name."""
    runs = list(runs)
    names = [run.name or f"run {run.id}" for run in runs]
    return {run.id: name if names.count(name) == 1 else f"{name} #{run.id}"
            for run, name in zip(runs, names)}


def curves(store: Store, run_ids: Iterable[int]) -> pd.DataFrame:
    """Long-form curves of the runs: one row per run, epoch, split and metric (loss/accuracy).

    The split is "train", or the run's validation split: "test", or "hold-out" for a run
    validated on part of its training set.
    """
    run_ids = list(dict.fromkeys(int(i) for i in run_ids))
    runs = [run for run in (store.get_run(i) for i in run_ids) if run is not None]
    labels = run_labels(runs)
    validation = {run.id: validation_split(run) for run in runs}
    rows = []
    for epoch in store.epochs_for(labels):
        for field, (split, metric) in _CURVE_FIELDS.items():
            split = validation[epoch["run_id"]] if split == VALIDATION else split
            if epoch.get(field) is not None:
                rows.append({"run_id": epoch["run_id"], "run": labels[epoch["run_id"]], "epoch": epoch["epoch"],
                             "split": split, "metric": metric, "value": float(epoch[field])})
    # Runs in the order asked for, so a chart's colours follow the person's selection.
    order = {run_id: position for position, run_id in enumerate(labels)}
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    frame = frame.sort_values(["run_id", "split", "metric", "epoch"], key=lambda c: c.map(order)
                              if c.name == "run_id" else c, kind="stable").reset_index(drop=True)
    return frame


THROUGHPUT_COLUMNS = ["epoch", "training images/s", "validation images/s", "epoch seconds"]


def throughput_frame(store: Store, run_id: int) -> pd.DataFrame:
    """Each epoch's speed: images per second of its training and validation phases (rounded),
    and its wall seconds; epochs logged before speeds were recorded show none."""
    rows = [{"epoch": e["epoch"], "training images/s": _rounded(e.get("train_images_per_s")),
             "validation images/s": _rounded(e.get("val_images_per_s")), "epoch seconds": round(e["seconds"], 1)}
            for e in store.epochs(run_id)]
    return pd.DataFrame(rows, columns=THROUGHPUT_COLUMNS)


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(round(value))


# Sampled resources (store.system_metrics columns) -> (panel title, unit); a run without a
# GPU has no GPU samples, and its GPU panels are left out.
SYSTEM_RESOURCES = {"cpu_percent": ("CPU (training process)", "% of one core"),
                    "memory_mb": ("Memory (training process)", "MB resident"),
                    "gpu_percent": ("GPU utilisation", "%"),
                    "gpu_memory_mb": ("GPU memory", "MB used")}


def system_frame(store: Store, run_id: int) -> pd.DataFrame:
    """Long form of a run's system samples: minutes, resource, value, unit (empty if none)."""
    samples = store.system_metrics(run_id)
    rows = [{"minutes": sample["seconds"] / 60, "resource": title, "value": float(sample[column]), "unit": unit}
            for column, (title, unit) in SYSTEM_RESOURCES.items()
            for sample in samples if sample[column] is not None]
    return pd.DataFrame(rows, columns=["minutes", "resource", "value", "unit"])


def smooth(values: Iterable[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so it starts at the first value.

    `weight` is in [0, MAX_SMOOTHING]; 0 returns the values unchanged. Non-finite values
    are passed through and do not disturb the average.
    """
    if not 0 <= weight <= MAX_SMOOTHING:
        raise ValueError(f"smoothing weight must be in [0, {MAX_SMOOTHING}], got {weight!r}")
    smoothed, last, steps = [], 0.0, 0
    for value in values:
        value = float(value)
        if not math.isfinite(value):
            smoothed.append(value)
            continue
        last = last * weight + (1 - weight) * value
        steps += 1
        smoothed.append(last / (1 - weight ** steps))
    return smoothed


def smooth_curves(frame: pd.DataFrame, weight: float) -> pd.DataFrame:
    """The curves with `value` smoothed per run, split and metric; the original kept as `raw`."""
    result = frame.copy()
    result["raw"] = result["value"]
    for _, group in result.groupby(["run_id", "split", "metric"], sort=False):
        ordered = group.sort_values("epoch")
        result.loc[ordered.index, "value"] = smooth(ordered["raw"], weight)
    return result


def curves_csv(store: Store, run_id: int) -> bytes:
    """A run's epochs as CSV (one row per epoch: losses, accuracies, seconds), for download."""
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "within_superclass",
               "val_within_superclass", "seconds", "train_images_per_s", "val_images_per_s", "learning_rate"]
    frame = pd.DataFrame(store.epochs(run_id), columns=["run_id", *columns])[columns]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def learning_rates(store: Store, run_id: int) -> pd.DataFrame:
    """Each logged epoch's learning rate (the one it started with): epoch, learning_rate.
    Empty for runs from before the rate was recorded."""
    rows = [{"epoch": row["epoch"], "learning_rate": row["learning_rate"]} for row in store.epochs(run_id)
            if row.get("learning_rate") is not None]
    return pd.DataFrame(rows, columns=["epoch", "learning_rate"])


# -- live progress ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """Where a run stands: epochs, the batch within the current epoch, and the time left."""

    phase: str  # e.g. "training", "validating", "loading data", "queued"
    epochs_done: int
    epochs_planned: int
    epoch: int | None  # the epoch in progress (1-based), None before training starts
    batch: int | None
    batches: int | None
    fraction: float  # 0..1 of all planned epochs
    eta_s: float | None  # seconds left; None until there is a measured speed to go by
    mean_epoch_s: float | None
    eta_basis: str = ""  # where the time left comes from, when not from this run's own epochs

    def describe(self) -> str:
        """One line for a progress bar, e.g. 'epoch 3/10, batch 120/782, about 4m 10s left'."""
        parts = [self.phase]
        if self.epoch:
            parts.append(f"epoch {min(self.epoch, self.epochs_planned)}/{self.epochs_planned}")
        if self.batch is not None and self.batches:
            parts.append(f"batch {self.batch}/{self.batches}")
        if self.eta_s is not None:
            parts.append(f"about {format_duration(self.eta_s)} left" + (f" ({self.eta_basis})" if self.eta_basis else ""))
        return ", ".join(parts)


FIRST_EPOCH_SHARE = 0.5  # with nothing measured, the first epoch's batches give a time left only past this share


def progress(run: Run, epochs: list[dict], now: float | None = None,
             similar: estimates.Throughput | None = None) -> Progress:
    """Progress of a run from its `progress` heartbeat and its logged epochs.

    The time left comes from measured speed, never from the first batches alone (they
    include start-up and graph tracing, and overestimate it many times): the mean epoch
    time of this run's finished epochs; before its first epoch ends, the speed of
    `similar` runs on this device (estimates.similar_throughput); with neither, the first
    epoch's batches once FIRST_EPOCH_SHARE of it is done. Less, in each case, what the
    current epoch has already taken.
    """
    now = time.time() if now is None else now
    beat = run.progress
    planned = max(1, int(run.epochs_planned or beat.get("epochs") or 1))
    done = len(epochs)
    batch, batches = beat.get("batch"), beat.get("batches")
    in_epoch = batch / batches if batch is not None and batches else 0.0
    phase = beat.get("phase") or run.status or ""
    if run.status != RUNNING:
        in_epoch = 0.0
        phase = run.status or phase
    fraction = min(1.0, (done + in_epoch) / planned)
    seconds = [row["seconds"] for row in epochs if row.get("seconds")]
    mean = sum(seconds) / len(seconds) if seconds else None
    elapsed = max(0.0, now - beat["epoch_started"]) if beat.get("epoch_started") else None
    eta, basis = None, ""
    if run.status == RUNNING:
        epoch_s = mean
        if epoch_s is None and similar is not None and run.config is not None:
            epoch_s = similar.epoch_seconds(run.config)
            basis = f"speed of {similar.basis}"
        if epoch_s is None and elapsed and in_epoch >= FIRST_EPOCH_SHARE:
            epoch_s = elapsed / in_epoch
        if epoch_s is not None:
            eta = max(0.0, epoch_s * (planned - done) - (elapsed or 0.0))
    return Progress(phase=phase, epochs_done=done, epochs_planned=planned, epoch=beat.get("epoch"),
                    batch=batch, batches=batches, fraction=fraction, eta_s=eta, mean_epoch_s=mean, eta_basis=basis)


def live_progress(store: Store, run: Run, now: float | None = None) -> Progress:
    """A run's progress as progress() gives it, with this device's similar runs looked up
    while the run has no finished epoch of its own."""
    epochs = store.epochs(run.id)
    similar = None
    if run.status == RUNNING and not epochs and run.config is not None:
        similar = estimates.similar_throughput(store, run.config, run.device, exclude=run.id)
    return progress(run, epochs, now, similar)


def format_duration(seconds: float | None) -> str:
    """'1h 02m', '3m 05s' or '12s'; '' for None."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class LiveRun:
    run: Run
    progress: Progress


def running_now(store: Store, now: float | None = None) -> list[LiveRun]:
    """Runs training now, oldest first, each with its progress."""
    runs = sorted(store.list_runs(status=RUNNING), key=lambda run: run.id)
    return [LiveRun(run, live_progress(store, run, now)) for run in runs]


def queued(store: Store) -> pd.DataFrame:
    """Runs waiting for the worker, in the order they will train."""
    runs = sorted(store.list_runs(status=QUEUED), key=lambda run: run.id)
    return pd.DataFrame([{"id": run.id, "name": run.name, "label_mode": run.label_mode,
                          "epochs_planned": run.epochs_planned, "created": _created(run.created_at)}
                         for run in runs], columns=["id", "name", "label_mode", "epochs_planned", "created"])


def best_of(runs: list[Run], need_model: bool = False, test_only: bool = False) -> dict[str, Run]:
    """Per label mode, the run with the best validation accuracy among those completed, stopped or
    interrupted (store.MODEL_STATES: their best epoch stands), with a saved model if need_model.

    test_only keeps out runs validated on a hold-out split: their accuracy is not a test
    figure, so it cannot be held against the study's.
    """
    best: dict[str, Run] = {}
    for run in runs:
        accuracy = run.best_val_accuracy
        if run.status not in MODEL_STATES or accuracy is None or (need_model and not run.model_path):
            continue
        if test_only and validation_split(run) != TEST:
            continue
        current = best.get(run.label_mode)
        if current is None or accuracy > current.best_val_accuracy:
            best[run.label_mode] = run
    return best


def best_runs(store: Store) -> dict[str, Run | None]:
    """The best run of each label mode by test accuracy (completed, stopped or interrupted; None where
    there is none), for comparing with the study's test figures: runs validated on a hold-out split
    are left out."""
    return {mode: None for mode in STUDY_BEST} | best_of(store.list_runs(), test_only=True)


# -- one run ----------------------------------------------------------------------------------
def status_line(run: Run) -> str:
    """The line under a run's name: 'run 3 · running · coarse labels · 1,234 parameters · best 41.2% at epoch 2'."""
    parts = [f"run {run.id}", run.status, f"{run.label_mode} labels"]
    if run.params:
        parts.append(f"{run.params:,} parameters")
    if run.best_epoch is not None and run.best_val_accuracy is not None:
        parts.append(f"best {validation_split(run)} accuracy {run.best_val_accuracy:.2%} at epoch "
                     f"{run.best_epoch}")
    if run.tta_accuracy is not None:
        parts.append(f"test accuracy with flip averaging {run.tta_accuracy:.2%}")
    return " · ".join(parts)


def initial_run(store: Store, selected: int | None, query: str | None) -> tuple[int | None, str | None]:
    """The run the Runs page opens on: the session's selection, else `?run=ID`, else the newest.

    Returns (run id or None when the store is empty, a message when `query` named no run).
    """
    if selected is not None and store.get_run(int(selected)) is not None:
        return int(selected), None
    message = None
    if query:
        try:
            run_id = int(str(query).strip())
        except ValueError:
            run_id = None
        if run_id is not None and store.get_run(run_id) is not None:
            return run_id, None
        message = f"There is no run {query!r}; showing the newest run instead."
    newest = store.list_runs()
    return (newest[0].id if newest else None), message


def first_present(ids: list[int], *wanted) -> int | None:
    """The first of `wanted` (an id, or its text as in ?run=12) that is one of `ids`; else the
    first of `ids`; None when there are none. How a picker chooses what to open on."""
    for candidate in wanted:
        try:
            candidate = int(str(candidate).strip())
        except ValueError:
            continue
        if candidate in ids:
            return candidate
    return ids[0] if ids else None


def compare_default(store: Store, count: int = 3) -> list[int]:
    """Ids of the `count` newest runs with at least one epoch, running ones included (the compare default).

    Runs still training count: a person who opens Compare mid-training wants to see them.
    """
    done = store.epoch_counts()
    return [run.id for run in store.list_runs() if done.get(run.id, 0) > 0][:count]


def run_label(run: Run) -> str:
    """How every picker names a run: '#12 seed-part2-12 (coarse, best 0.512)', with its status
    when it is not completed ('#13 x (fine, stopped, best 0.301)')."""
    details = [run.label_mode]
    if run.status != COMPLETED:
        details.append(run.status)
    if run.best_val_accuracy is not None:
        details.append(f"best {run.best_val_accuracy:.3f}")
    return f"#{run.id} {run.name} ({', '.join(details)})"


def run_options(runs: Iterable[Run]) -> dict[int, str]:
    """Run id -> run_label for a picker, in the order given (the store lists newest first)."""
    return {run.id: run_label(run) for run in runs}


def run_config_view(run: Run) -> dict:
    """A run's config as a person reads it: layers, hyperparameters and provenance."""
    config = run.config
    if config is None:  # e.g. a config from a newer version: show it as stored
        return {"layers": [], "hyperparameters": run.stored_config, "provenance": _provenance(run),
                "problem": run.config_error}
    if config.backbone is not None:
        b = config.backbone
        layers = [f"{b.name} backbone ({b.weights} weights, {b.image_size}x{b.image_size} input)",
                  *( [f"dense {b.head_units} relu", f"dropout {b.head_dropout}"] if b.head_units else []),
                  f"dense {config.num_classes} softmax (head)"]
    else:
        layers = [layer.describe() for layer in config.layers] + [f"dense {config.num_classes} softmax (head)"]
    hyper = {"label mode": config.label_mode, "optimizer": config.optimizer, "learning rate": config.learning_rate,
             "batch size": config.batch_size, "epochs": config.total_epochs,
             "validation": "test set" if config.validation == "test"
             else f"hold-out {config.holdout_fraction:.0%} of train",
             "training images": config.limit or "all", "augmentation": ", ".join(config.augment) or "none"}
    if config.optimizer == "sgd":
        hyper["momentum"] = config.momentum
        hyper["Nesterov"] = "yes" if config.nesterov else "no"
    hyper |= _recipe_view(config)
    if config.backbone is not None and config.backbone.fine_tune_epochs:
        hyper["fine-tune epochs"] = config.backbone.fine_tune_epochs
        hyper["fine-tune learning rate"] = config.backbone.fine_tune_learning_rate
    return {"layers": layers, "hyperparameters": hyper, "provenance": _provenance(run), "problem": None}


def _recipe_view(config: RunConfig) -> dict:
    """The schedule and regularisation settings that differ from the study's plain recipe."""
    from .schedules import decay_every

    shown = {"schedule": config.schedule}
    if config.warmup_epochs:
        shown["warm-up epochs"] = config.warmup_epochs
    if config.schedule == "step":
        shown["decay"] = f"x{config.decay_factor:g} every {decay_every(config)} epoch(s)"
    optional = {"weight decay": config.weight_decay, "label smoothing": config.label_smoothing,
                "early stopping patience": config.early_stopping, "plateau patience": config.plateau_patience}
    shown |= {name: value for name, value in optional.items() if value}
    if config.plateau_patience:
        shown["plateau factor"] = config.plateau_factor
    if config.tta:
        shown["test-time augmentation"] = "flip averaging"
    return shown


def _provenance(run: Run) -> dict:
    versions = run.versions
    return {"seed": run.seed, "device": run.device or "not started",
            "speed settings": describe_speed(run.speed, run.config.batch_size if run.config else None) or "not recorded",
            **{name: version for name, version in sorted(versions.items())},
            "created": run.created_at, "started": run.started_at, "finished": run.finished_at}


def model_download(run: Run) -> tuple[Callable[[], bytes], str] | None:
    """The run's saved best model as (a reader of its bytes, download file name); None if none is on disk.

    The bytes are read only when the reader is called (a click), so a live view that
    re-renders every few seconds does not re-read a model of many megabytes each time.
    """
    path = run.model_path
    if path is None or not path.is_file():
        return None
    name = run.name or "run"
    # Default names already end in "-<id>"; others get it so downloads never clash.
    stem = name if name.endswith(f"-{run.id}") else f"{name}-{run.id}"
    # Read without following links: the file may have been swapped for one since the run was read.
    return functools.partial(read_without_links, path), f"{stem}.keras"


def model_file(run: Run) -> tuple[bytes, str] | None:
    """The run's saved best model as (bytes, download file name), or None if it has none on disk."""
    download = model_download(run)
    return None if download is None else (download[0](), download[1])

