"""A run as one .zip, to share a result and reproduce it elsewhere (`export-run`, `import-run`).

The archive holds `manifest.json` (the run's record: config, provenance, status, notes and
tags where the store has them; its epochs; its system metrics), `predictions.npz` (its
stored test-set predictions, plain arrays) and `model.keras` (its best model), the last two
when the run has them. Nothing in it is executed or unpickled on import: the JSON is
parsed and type-checked, the arrays are read with `allow_pickle=False`, and the model is
copied as a file (it is only ever loaded in Keras's safe mode).
"""
from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .artifacts import read_without_links
from .markup import one_line
from .config import NUM_CLASSES, ConfigError, RunConfig, validate

FORMAT = "lsc-run-archive"
VERSION = 1
MANIFEST, PREDICTIONS, MODEL = "manifest.json", "predictions.npz", "model.keras"
# Members past these sizes (uncompressed) are refused before they are read: a zip bomb
# stops here, and real archives stay far below (a fine run's predictions are ~2 MB).
LIMITS = {MANIFEST: 64 * 2**20, PREDICTIONS: 256 * 2**20, MODEL: 2 * 2**30}
# Columns that describe this store's process and files, not the run: never carried over.
LOCAL_COLUMNS = {"id", "pid", "host", "heartbeat_at", "progress", "stop_requested", "model_path", "search_id",
                 "boot_id", "pid_ns", "process_started", "owner"}


class ArchiveError(ValueError):
    """The archive cannot be written or read; the message says why, in one line."""


def export_run(store, run_id: int, out: str | Path) -> Path:
    """Write run `run_id` of `store` to the zip file `out` (which must not exist yet)."""
    run = store.get_run(run_id)
    if run is None:
        raise ArchiveError(f"no run {run_id} in {store.path}")
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out} already exists; choose a new path")
    manifest = {
        "format": FORMAT, "version": VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": {key: value for key, value in store.run_record(run_id).items() if key not in LOCAL_COLUMNS},
        "epochs": [_without(row, "run_id") for row in store.epochs(run_id)],
        "system_metrics": [_without(row, "run_id") for row in store.system_metrics(run_id)],
    }
    partial = out.with_name(f".partial-{out.name}")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1, default=_json_default))
            predictions = store.load_predictions(run_id)
            if predictions is not None:
                archive.writestr(PREDICTIONS, _predictions_npz(predictions))
            if run.model_path and Path(run.model_path).is_file():
                # Read without following links: a file swapped for one since the run was read is refused.
                archive.writestr(MODEL, read_without_links(run.model_path))
        partial.rename(out)
    except OSError as exc:  # the model swapped for a link since the run was read, a full disk
        raise ArchiveError(one_line(exc)) from None
    finally:
        partial.unlink(missing_ok=True)
    return out


def import_run(store, archive_path: str | Path) -> int:
    """Add the run in `archive_path` to `store` as a new run; returns its id.

    A run that was still queued or running when exported arrives as interrupted: no
    process of this store is training it.
    """
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _checked_members(archive)
            manifest = _read_manifest(archive.read(MANIFEST))
            predictions = _read_predictions(archive.read(PREDICTIONS)) if PREDICTIONS in members else None
            model = archive.read(MODEL) if MODEL in members else None
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, RuntimeError) as exc:
        raise ArchiveError(f"{archive_path} is not a readable run archive: {one_line(exc, 200)}") from None
    label_mode = manifest["run"]["label_mode"]
    if predictions is not None and predictions["probabilities"].shape[1] != NUM_CLASSES[label_mode]:
        raise ArchiveError(f"{PREDICTIONS} has {predictions['probabilities'].shape[1]} classes, a {label_mode} "
                           f"run {NUM_CLASSES[label_mode]}")
    fields = dict(manifest["run"])
    epoch = fields.pop("model_epoch", None)  # recorded below with the model it describes, if there is one
    run_id = store.import_run(fields, manifest["epochs"], manifest["system_metrics"])
    if predictions is not None:
        store.save_predictions(run_id, predictions["probabilities"], predictions["fine"], predictions["coarse"],
                               label_mode)
    if model is not None:
        # Into the importing store's own artifacts folder, whatever the exporting store's was.
        path = store.artifacts / str(run_id) / "best.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model)
        store.set_model_path(run_id, path, epoch=epoch if isinstance(epoch, int) and epoch > 0 else None)
    return run_id


# -- reading an archive that may have been tampered with ------------------------------------
def _checked_members(archive: zipfile.ZipFile) -> set[str]:
    names = {info.filename: info for info in archive.infolist()}
    unknown = set(names) - set(LIMITS)
    if unknown:
        raise ArchiveError(f"unexpected file(s) in the archive: {', '.join(sorted(unknown))[:200]}")
    if MANIFEST not in names:
        raise ArchiveError(f"the archive has no {MANIFEST}")
    for name, info in names.items():
        if info.file_size > LIMITS[name]:
            raise ArchiveError(f"{name} in the archive is {info.file_size:,} bytes, over the limit of "
                               f"{LIMITS[name]:,}")
    return set(names)


def _read_manifest(raw: bytes) -> dict:
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"{MANIFEST} is not valid JSON: {one_line(exc, 200)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"not an LSC run archive ({MANIFEST} has no format {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ArchiveError(f"archive version {manifest.get('version')!r} is not supported (this code reads "
                           f"version {VERSION})")
    run, epochs, system = manifest.get("run"), manifest.get("epochs", []), manifest.get("system_metrics", [])
    if not isinstance(run, dict) or not isinstance(epochs, list) or not isinstance(system, list):
        raise ArchiveError(f"{MANIFEST}: 'run' must be an object, 'epochs' and 'system_metrics' lists")
    try:
        config = validate(RunConfig.from_dict(run.get("config")))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ArchiveError(f"the archived run's config is not valid: {one_line(exc, 200)}") from None
    if run.get("label_mode") != config.label_mode:
        raise ArchiveError("the archived run's label mode does not match its config")
    return {"run": {**_scalars(run, "run", json_columns=("config", "versions")), "config": config.to_json()},
            "epochs": [_numbers(row, "epochs") for row in epochs],
            "system_metrics": [_numbers(row, "system_metrics") for row in system]}


def _scalars(row: dict, where: str, json_columns: tuple[str, ...]) -> dict:
    """A record's fields as SQLite values: JSON columns re-encoded, anything else a scalar."""
    clean = {}
    for key, value in row.items():
        if not isinstance(key, str) or key in LOCAL_COLUMNS:
            continue
        if key in json_columns:
            clean[key] = None if value is None else json.dumps(value)
        elif value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
            clean[key] = value
        elif isinstance(value, (list, dict)):  # e.g. tags: kept as JSON text
            clean[key] = json.dumps(value)
        else:
            raise ArchiveError(f"{where}: field {key!r} has an unusable value")
    return clean


def _numbers(row, where: str) -> dict:
    if not isinstance(row, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in row.values()):
        raise ArchiveError(f"{MANIFEST}: every row of {where!r} must map names to numbers")
    return row


def _read_predictions(raw: bytes) -> dict:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
            probabilities = np.asarray(arrays["probabilities"], dtype=np.float16)
            fine, coarse = np.asarray(arrays["fine"]), np.asarray(arrays["coarse"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{PREDICTIONS} is not usable: {one_line(exc, 200)}") from None
    count = len(probabilities)
    if probabilities.ndim != 2 or fine.shape != (count,) or coarse.shape != (count,) or \
            count and (fine.max() >= NUM_CLASSES["fine"] or coarse.max() >= NUM_CLASSES["coarse"]):
        raise ArchiveError(f"{PREDICTIONS}: probabilities and labels do not fit together")
    return {"probabilities": probabilities, "fine": fine.astype(np.uint8), "coarse": coarse.astype(np.uint8)}


# -- small helpers ----------------------------------------------------------------------------
def _predictions_npz(predictions: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probabilities=predictions["probabilities"], fine=predictions["fine"],
                        coarse=predictions["coarse"])
    return buffer.getvalue()


def _without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot store {type(value).__name__} in an archive")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")

