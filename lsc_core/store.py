"""runs.sqlite: the one place every run, epoch and search lives.

The training thread, the dashboard's pages and the command line all go through this
module, each thread with its own connection (SQLite connections must not be shared
across threads). WAL mode lets pages read while a run writes; the busy timeout makes a
writer wait for another instead of failing at once.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import sqlite_utils

from . import artifacts
from . import liveness
from .liveness import STALE_HEARTBEAT_S  # noqa: F401  (re-exported: how long an unaskable owner may be silent)
# The statuses live with Run; importing them from here keeps one import line for callers.
from .runs import (ACTIVE_STATES, COMPLETED, FAILED, FINISHED_STATES, INTERRUPTED, MODEL_STATES,  # noqa: F401
                   QUEUED, RUNNING, STATUSES, STOPPED, Run, json_list, json_object, run_from_row)

CHECKPOINT_FILE = "checkpoint.npz"  # a run's resumable checkpoint in its artifacts folder (lsc_core/checkpoint.py)
# Runs that `resume` continues (a completed one is extended instead).
RESUMABLE_STATES = (STOPPED, INTERRUPTED, FAILED)
BUSY_TIMEOUT_S = 30  # how long a write waits for another writer before giving up


class StoreError(RuntimeError):
    """The store cannot be used (locked for too long, not a database, newer schema)."""


class NotOwner(StoreError):
    """A trainer's write about a run it no longer owns (another process marked it interrupted,
    requeued or deleted it): refused, nothing written; the trainer must stop."""

    def __init__(self, run_id: int, status: str | None):
        now = f"now {status}" if status else "deleted"
        super().__init__(f"run {run_id} is no longer owned by this process ({now}, changed by another); "
                         "training stopped, nothing written")
        self.run_id = run_id


# What a page may get from a store that is not one or is damaged (sqlite3's own error for
# damage found mid-query): app.py turns these into one line, without importing sqlite3.
STORE_ERRORS = (StoreError, sqlite3.DatabaseError)


def default_db_path() -> Path:
    return Path(os.environ.get("LSC_DB", "runs.sqlite"))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- Schema, one migration per version (PRAGMA user_version) -----------------------------
def _migration_1(db: sqlite_utils.Database) -> None:
    db["runs"].create({
        "id": int, "name": str, "status": str, "label_mode": str, "config": str, "params": int,
        "best_epoch": int, "best_val_accuracy": float, "created_at": str, "started_at": str,
        "finished_at": str, "error": str,
        "seed": int, "versions": str, "device": str,  # provenance
        "epochs_planned": int, "pid": int, "host": str, "heartbeat_at": float,
        "progress": str,  # JSON: phase, epoch, batch, batches, started_epoch_at
        "stop_requested": int, "model_path": str, "search_id": int,
    }, pk="id", not_null={"status", "config", "created_at"}, defaults={"stop_requested": 0})
    db["epochs"].create({
        "run_id": int, "epoch": int, "loss": float, "accuracy": float, "val_loss": float,
        "val_accuracy": float, "seconds": float,
    }, pk=("run_id", "epoch"), foreign_keys=[("run_id", "runs", "id")])
    db["runs"].create_index(["status"])
    db["searches"].create({
        "id": int, "name": str, "status": str, "spec": str, "created_at": str, "finished_at": str,
    }, pk="id")


def _migration_2(db: sqlite_utils.Database) -> None:
    # Test-set predictions of a run's best model, computed once so Evaluate opens fast.
    db["predictions"].create({
        "run_id": int, "created_at": str, "probabilities": bytes, "labels": bytes,
        "shape": str, "label_mode": str,
    }, pk="run_id", foreign_keys=[("run_id", "runs", "id")])


def _migration_3(db: sqlite_utils.Database) -> None:
    # The study replayed as a suite: which run (or search) plays each of its experiments.
    db["suites"].create({"id": int, "name": str, "spec": str, "created_at": str}, pk="id")
    db["suite_runs"].create({"suite_id": int, "key": str, "run_id": int}, pk=("suite_id", "key"),
                            foreign_keys=[("suite_id", "suites", "id"), ("run_id", "runs", "id")])


def _migration_4(db: sqlite_utils.Database) -> None:
    # Where a run was started: 'cli', 'dashboard', 'search' or 'study'.
    db["runs"].add_column("source", str)
    db.execute("UPDATE runs SET source = 'search' WHERE search_id IS NOT NULL")


def _migration_system_metrics(db: sqlite_utils.Database) -> None:
    # CPU, memory and GPU use sampled while a run trains (lsc_core/sysmetrics.py).
    db["system_metrics"].create({
        "run_id": int, "seconds": float, "cpu_percent": float, "memory_mb": float,
        "system_memory_percent": float, "gpu_percent": float, "gpu_memory_mb": float,
    }, foreign_keys=[("run_id", "runs", "id")])
    db["system_metrics"].create_index(["run_id", "seconds"])


def _migration_throughput(db: sqlite_utils.Database) -> None:
    # Throughput of each epoch's phases, and the speed settings a run trained with
    # (NULL for runs trained before they were recorded).
    for column in SPEED_COLUMNS:
        if column not in db["runs"].columns_dict:
            db["runs"].add_column(column, int)
    for column in ("train_images_per_s", "val_images_per_s"):
        if column not in db["epochs"].columns_dict:
            db["epochs"].add_column(column, float)


def _migration_drafts(db: sqlite_utils.Database) -> None:
    # Forms kept across reloads and tabs (the Build page's network and settings), as JSON by name.
    if "drafts" not in db.table_names():
        db["drafts"].create({"name": str, "state": str, "updated_at": str}, pk="name")


def _migration_within_superclass(db: sqlite_utils.Database) -> None:
    # Fine runs: the share of each epoch's errors inside the right superclass, on the training
    # batches and on validation (lsc_core/hierarchy.py); NULL for coarse runs and older epochs.
    for column in HIERARCHY_COLUMNS:
        if column not in db["epochs"].columns_dict:
            db["epochs"].add_column(column, float)


def _migration_recipe(db: sqlite_utils.Database) -> None:
    # The training recipe: each epoch's learning rate (at its first step); why a run ended
    # before its planned epochs (early stopping); its test accuracy with flip averaging.
    for table, column, kind in (("epochs", "learning_rate", float), ("runs", "end_reason", str),
                                ("runs", "tta_accuracy", float)):
        if column not in db[table].columns_dict:  # safe on a store that has it already
            db[table].add_column(column, kind)


HIERARCHY_COLUMNS = ("within_superclass", "val_within_superclass")


def _migration_status_check(db: sqlite_utils.Database) -> None:
    # Statuses enforced by the schema: a CHECK constraint on runs.status. SQLite cannot add
    # one to an existing table, so the table is rebuilt from its own CREATE statement
    # (keeping every column added before) and its indexes are created again. The status
    # list is written out: it is this version's, whatever the code's constants become later.
    create, = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
    if "CHECK (status IN" in create:  # already there (e.g. two processes racing)
        return
    column = '"status" TEXT NOT NULL'
    if column not in create:
        raise StoreError("the runs table has a status column this code did not write; the store was left as it was")
    checked = create.replace(column, column + " CHECK (status IN ('queued', 'running', 'completed', "
                                              "'failed', 'stopped', 'interrupted'))", 1)
    indexes = [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                            "AND tbl_name = 'runs' AND sql IS NOT NULL")]
    db.execute(checked.replace('CREATE TABLE "runs"', 'CREATE TABLE "runs_checked"', 1))
    db.execute('INSERT INTO "runs_checked" SELECT * FROM "runs"')
    db.execute('DROP TABLE "runs"')
    db.execute('ALTER TABLE "runs_checked" RENAME TO "runs"')
    for sql in indexes:
        db.execute(sql)


def _migration_keeping_order(db: sqlite_utils.Database) -> None:
    # Runs a person keeps in order: a free-text note, tags (a JSON list of strings), archived
    # runs hidden by default.
    for column, kind in (("note", str), ("tags", str), ("archived", int)):
        if column not in db["runs"].columns_dict:
            db["runs"].add_column(column, kind)
    db.execute("UPDATE runs SET archived = 0 WHERE archived IS NULL")


def _migration_store_info(db: sqlite_utils.Database) -> None:
    # The store's identity: a random id made once, and the name of its own artifacts folder
    # (lsc_core/artifacts.py). A store with runs already keeps the shared root it used so far:
    # its model paths are relative to it, and moving files on open could mix two stores'.
    db.execute("CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    store_id = uuid.uuid4().hex
    file = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "") or "store"
    had_runs = db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
    folder = artifacts.SHARED_ROOT if had_runs else artifacts.new_folder_name(file, store_id)
    db.execute("INSERT OR IGNORE INTO store_info (key, value) VALUES (?, ?), (?, ?)",
               [artifacts.STORE_ID, store_id, artifacts.FOLDER, folder])


def _migration_model_epoch(db: sqlite_utils.Database) -> None:
    # Which epoch a run's saved model is (NULL for models saved before it was recorded).
    if "model_epoch" not in db["runs"].columns_dict:
        db["runs"].add_column("model_epoch", int)


# Who owns a running run (lsc_core/liveness.py): beside pid and host, the kernel's boot id, the
# PID namespace and the process's start time, and the token of them all that guarded writes check.
OWNER_COLUMNS = {"owner": str, "boot_id": str, "pid_ns": str, "process_started": float}


def _migration_owner(db: sqlite_utils.Database) -> None:
    for column, kind in OWNER_COLUMNS.items():
        if column not in db["runs"].columns_dict:  # safe on a store that has them already
            db["runs"].add_column(column, kind)


# The speed settings recorded per run (see lsc_core/acceleration.py): 0/1 flags and counts.
SPEED_COLUMNS = ("mixed_precision", "xla", "steps_per_execution", "data_on_device", "replicas")
MIGRATIONS = (_migration_1, _migration_2, _migration_3, _migration_4, _migration_system_metrics,
              _migration_throughput, _migration_drafts, _migration_within_superclass, _migration_keeping_order,
              _migration_recipe,
              _migration_status_check, _migration_store_info, _migration_model_epoch,
              _migration_owner)


# Tables every store has from migration 1 on: what tells a store from another application's
# SQLite file, which must never be given our tables or switched to WAL mode.
STORE_TABLES = {"runs", "epochs", "searches"}


def read_only_reason(path: Path) -> str | None:
    """Why the store at `path` can only be read ('filesystem': a read-only mount, 'file': a
    file this user may not write), or None when it can be written."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return "filesystem"
    except OSError:
        return None
    return "file" if path.exists() and not os.access(path, os.W_OK) else None


def _use_wal(db: sqlite_utils.Database) -> None:
    """Switch to WAL mode. Processes opening a brand-new store at one moment race for the lock
    the switch needs, and SQLite answers "locked" without waiting: retry for the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _connect(path: Path) -> sqlite_utils.Database:
    read_only = read_only_reason(path)
    # Read-only: SQLite must not try to create the WAL's -shm file; on a read-only mount
    # nothing can change the file, so it is opened as immutable (no locks, no -shm).
    mode = {"filesystem": "immutable=1", "file": "mode=ro"}.get(read_only, "mode=rwc")
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?{mode}", uri=True, timeout=BUSY_TIMEOUT_S,
                           isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    db = sqlite_utils.Database(conn)
    try:
        _check_is_store(db, path)
        if not read_only:
            _use_wal(db)
    except sqlite3.OperationalError as exc:  # the file could not be read or its WAL index written
        conn.close()
        hint = " (is its disk full?)" if "I/O error" in str(exc) or "full" in str(exc) else ""
        raise StoreError(f"cannot open {path}: {exc}{hint}; it was left as it is") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path} is not a usable SQLite database ({exc}); it was left as it is") from None
    except StoreError:
        conn.close()
        raise
    # In WAL mode NORMAL never corrupts the store; it only skips an fsync per commit,
    # which heartbeats (one a second while training) would otherwise pay.
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _check_is_store(db: sqlite_utils.Database, path: Path) -> None:
    """StoreError, before anything is written, for an SQLite file that this code must not
    change: a store of a newer version, or another application's database (tables but no
    schema version, or a version without our tables)."""
    # One read transaction, so the version and the tables come from one snapshot: read apart, a
    # store another process is creating this moment could show version 0 beside its new tables.
    with db.conn:
        db.execute("BEGIN")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%'")}
    if version > len(MIGRATIONS):
        raise StoreError(f"the store has schema version {version}, newer than this code "
                         f"({len(MIGRATIONS)}); upgrade the LSC dashboard")
    if (version == 0 and tables) or (version > 0 and not STORE_TABLES <= tables):
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(f"{path} is another application's SQLite database (tables: {shown or 'none'}), not a "
                         "run store; it was left as it is")


def migrate(db: sqlite_utils.Database, read_only: bool = False) -> None:
    """Bring the schema up to this code's version; a read-only store must already be there.
    (A store newer than this code was refused when it was opened.)"""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if read_only and version < len(MIGRATIONS):
        raise StoreError(f"the store is read-only and has schema version {version}, older than this code's "
                         f"{len(MIGRATIONS)}: open it once with write access to upgrade it")
    if version >= len(MIGRATIONS):
        return
    # A migration may rebuild a table that others reference (SQLite's documented way to
    # change a table): foreign keys are off while it runs and checked before it commits.
    # The pragma has no effect inside a transaction, hence here.
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with db.conn:
                db.execute("BEGIN IMMEDIATE")
                # Another process may have migrated while we waited for the lock.
                if db.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue
                step(db)
                broken = db.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration {number} would leave {len(broken)} broken reference(s); "
                                     "the store was left as it was")
                db.execute(f"PRAGMA user_version = {number}")
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def _ownership() -> dict[str, Any]:
    """The owner columns of a run this process takes (claims, creates running, starts)."""
    me = liveness.this_process()
    return {"pid": me.pid, "host": me.host, "boot_id": me.boot_id, "pid_ns": me.pid_ns,
            "process_started": me.started, "owner": me.token}


def _owner_of(row: dict) -> liveness.Identity | None:
    """The recorded owner of a running run, None for a row written before owners were recorded."""
    if not row.get("owner") or row.get("pid") is None or row.get("process_started") is None:
        return None
    return liveness.Identity(host=row["host"], boot_id=row["boot_id"], pid_ns=row["pid_ns"], pid=row["pid"],
                             started=row["process_started"])


# A run's best epoch and accuracy from its epochs (ties: the earliest), with a heartbeat.
_BEST_EPOCH_UPDATE = ("UPDATE runs SET (best_epoch, best_val_accuracy) = (SELECT epoch, val_accuracy FROM epochs "
                      "WHERE run_id = ? AND val_accuracy IS NOT NULL ORDER BY val_accuracy DESC, epoch LIMIT 1), "
                      "heartbeat_at = ? WHERE id = ?")


class Store:
    """The run store at `path`. Safe to share between threads: each gets its own connection."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_db_path()
        self._local = threading.local()
        # A read-only store can be shown but not changed: no migration, no dead runs marked.
        self.read_only = read_only_reason(self.path) is not None
        try:
            if not self.read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            migrate(self.db, self.read_only)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc.strerror}") from None
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database ({exc}); it was left as it is") from None
        self._folder_name = self._stored_folder_name()
        try:  # a tampered name is refused when the store is opened, not at each use
            artifacts.StoreFolder.of(self.path, self._folder_name)
        except artifacts.FolderError as exc:
            raise StoreError(str(exc)) from None
        self.mark_dead_runs_interrupted()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _connect(self.path)
        return db

    @property
    def folder(self) -> artifacts.StoreFolder:
        """This store's artifacts folder under the root of now ($LSC_ARTIFACTS is read at each use)."""
        return artifacts.StoreFolder.of(self.path, self._folder_name)

    @property
    def artifacts(self) -> Path:
        """This store's own artifacts folder (absolute): its runs' files live in `<artifacts>/<run id>/`."""
        return self.folder.path

    def _stored_folder_name(self) -> str | None:
        """store_info's artifacts folder name; None in a read-only store older than store_info."""
        if "store_info" not in self.db.table_names():
            return None
        row = self.db.execute("SELECT value FROM store_info WHERE key = ?", [artifacts.FOLDER]).fetchone()
        return row[0] if row else None

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One write statement; a lock held past the busy timeout becomes a StoreError."""
        try:
            return self.db.execute(sql, list(params))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(f"{self.path} is locked by another writer (waited {BUSY_TIMEOUT_S} s); "
                                 "nothing was lost, try again") from None
            if "readonly" in str(exc):
                raise StoreError(f"{self.path} is read-only: nothing can be recorded in it") from None
            if "disk is full" in str(exc) or "I/O error" in str(exc):
                raise StoreError(f"cannot write to {self.path}: {exc} (nothing already stored was lost)") from None
            raise

    # -- runs -------------------------------------------------------------------------
    def create_run(self, config, status: str = QUEUED, search_id: int | None = None,
                   source: str | None = None) -> int:
        """Record a run for a RunConfig (queued for a worker, or running in this process).

        `source` says where it was started ('cli', 'dashboard', 'search', 'study');
        a search's trials are 'search' unless said otherwise.
        """
        assert status in ACTIVE_STATES, status
        created = now_iso()
        # A run trained in this process right away is owned by it from the start, so
        # that no other process takes it for a dead one.
        owner = {**_ownership(), "heartbeat_at": time.time(), "started_at": created} if status == RUNNING else {}
        fields = {"name": config.display_name(), "status": status, "label_mode": config.label_mode,
                  "config": config.to_json(), "seed": config.seed, "epochs_planned": config.total_epochs,
                  "created_at": created, "search_id": search_id,
                  "source": source or ("search" if search_id else None), "stop_requested": 0, **owner}
        cursor = self._write(f"INSERT INTO runs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                             list(fields.values()))
        run_id = cursor.lastrowid
        if not config.name:  # a short distinguishing suffix: the run id
            self._write("UPDATE runs SET name = ? WHERE id = ?", [f"{config.display_name()}-{run_id}", run_id])
        return run_id

    def import_run(self, fields: dict, epochs: list[dict], system_metrics: list[dict]) -> int:
        """Add a run brought from another store (lsc_core/archive.py) with its epochs and system
        samples, in one transaction; returns its new id.

        Only columns this store has are kept (an archive from a newer version may carry more);
        a run that was active there arrives interrupted, as nothing here trains it.
        """
        status = fields.get("status")
        fields = {**fields, "status": INTERRUPTED if status in ACTIVE_STATES or status not in FINISHED_STATES
                  else status, "stop_requested": 0}
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            run_id = self._insert("runs", fields, drop={"id"})
            for row in epochs:
                self._insert("epochs", {**row, "run_id": run_id})
            for row in system_metrics:
                self._insert("system_metrics", {**row, "run_id": run_id})
        return run_id

    def _insert(self, table: str, row: dict, drop: set = frozenset()) -> int:
        """INSERT of the row's columns that the table has (names come from the schema, never from the row)."""
        columns = [c for c in self.db[table].columns_dict if c in row and c not in drop]
        marks = ", ".join("?" * len(columns))
        return self._write(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                           [row[c] for c in columns]).lastrowid

    def claim_next_queued(self) -> Run | None:
        """Atomically move the oldest queued run to running for this process; None if none."""
        while True:
            row = self.db.execute("SELECT id FROM runs WHERE status = ? ORDER BY id LIMIT 1", [QUEUED]).fetchone()
            if row is None:
                return None
            if self.claim_run(row[0]):  # else another worker took it first: try the next
                return self.get_run(row[0])

    # -- the trainer's writes ---------------------------------------------------------------
    # Each takes `owner`: the trainer passes its token (liveness.this_process().token) and the
    # write happens only while the run is still running under that owner, else NotOwner and
    # nothing is written. Without it (other processes, tests) the write is unconditional.
    def _update_run_as(self, run_id: int, owner: str | None, assignment: str, params: list) -> None:
        if owner is None:
            self._write(f"UPDATE runs SET {assignment} WHERE id = ?", [*params, run_id])
        elif self._write(f"UPDATE runs SET {assignment} WHERE id = ? AND status = ? AND owner = ?",
                         [*params, run_id, RUNNING, owner]).rowcount == 0:
            raise self._not_owner(run_id)

    def _not_owner(self, run_id: int) -> NotOwner:
        row = self.db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
        return NotOwner(run_id, row[0] if row else None)

    def check_owner(self, run_id: int, owner: str) -> None:
        """NotOwner unless the run is still running under `owner`."""
        if not self.db.execute("SELECT 1 FROM runs WHERE id = ? AND status = ? AND owner = ?",
                               [run_id, RUNNING, owner]).fetchone():
            raise self._not_owner(run_id)

    @contextlib.contextmanager
    def holding(self, run_id: int, owner: str | None):
        """A write transaction in which the run stays `owner`'s (NotOwner, nothing done, if it is not
        already): for work beside the store that must happen only while this process owns the run,
        such as replacing its model file. No other process can change the run until it ends (keep
        it short: other writers wait). With owner None, only the transaction."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            if owner is not None:
                self.check_owner(run_id, owner)
            yield

    def start_run(self, run_id: int, *, params: int, versions: dict, device: str, speed: dict | None = None,
                  owner: str | None = None) -> None:
        """Mark a run as training here, with its provenance: parameter count, library versions,
        device, and the speed settings it trains with ({column: int} of SPEED_COLUMNS)."""
        speed = speed or {}
        settings = [int(speed[c]) if speed.get(c) is not None else None for c in SPEED_COLUMNS]
        ownership = _ownership()
        self._update_run_as(
            run_id, owner,
            "status = ?, params = ?, versions = ?, device = ?, heartbeat_at = ?, started_at = COALESCE(started_at, ?), "
            + ", ".join(f"{c} = ?" for c in (*SPEED_COLUMNS, *ownership)),
            [RUNNING, params, json.dumps(versions), device, time.time(), now_iso(), *settings, *ownership.values()])

    def heartbeat(self, run_id: int, progress: dict, owner: str | None = None) -> None:
        """The trainer is alive: the time now and where it is (phase, epoch, batch...)."""
        self._update_run_as(run_id, owner, "heartbeat_at = ?, progress = ?", [time.time(), json.dumps(progress)])

    def log_epoch(self, run_id: int, epoch: int, metrics: dict, seconds: float, *,
                  train_images_per_s: float | None = None, val_images_per_s: float | None = None,
                  owner: str | None = None) -> None:
        """Write one epoch's metrics (losses, accuracies and, for fine runs, the within-superclass
        error shares), its wall seconds (validation included), the images per second of its
        training and validation phases, and the learning rate it started with (the recipe's
        callback puts it in `metrics`); keep the run's best epoch up to date, atomically."""
        values = [run_id, epoch] + [_float(metrics.get(k)) for k in ("loss", "accuracy", "val_loss",
                                                                       "val_accuracy")] + [seconds]
        hierarchy = [_finite(metrics.get(k)) for k in HIERARCHY_COLUMNS]
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            self._update_run_as(run_id, owner, "heartbeat_at = ?", [time.time()])  # NotOwner rolls back
            self._write("INSERT OR REPLACE INTO epochs (run_id, epoch, loss, accuracy, val_loss, val_accuracy, "
                        "seconds, train_images_per_s, val_images_per_s, within_superclass, val_within_superclass, "
                        "learning_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        values + [_float(train_images_per_s), _float(val_images_per_s)] + hierarchy
                        + [_float(metrics.get("learning_rate"))])
            self._write(_BEST_EPOCH_UPDATE, [run_id, time.time(), run_id])

    def set_model_path(self, run_id: int, path: str | os.PathLike, epoch: int | None = None,
                       owner: str | None = None) -> None:
        """Record a run's saved model and the epoch it is (None: not known), relative to the
        store's artifacts folder (a relative `path` is taken inside it), so that a store and
        its artifacts can be moved together. A path outside that folder is refused."""
        try:
            stored = self.folder.stored_form(path)
        except artifacts.FolderError as exc:
            raise StoreError(f"run {run_id}: {exc}") from None
        self._update_run_as(run_id, owner, "model_path = ?, model_epoch = ?", [stored, epoch])

    def finish_run(self, run_id: int, status: str, error: str | None = None, owner: str | None = None) -> None:
        """A run's final status (and why, for a failure)."""
        assert status in FINISHED_STATES, status
        self._update_run_as(run_id, owner, "status = ?, error = ?, finished_at = ?, progress = NULL",
                            [status, error, now_iso()])

    def set_end_reason(self, run_id: int, reason: str, owner: str | None = None) -> None:
        """Why a run ends before its planned epochs (e.g. early stopping); kept when it finishes."""
        self._update_run_as(run_id, owner, "end_reason = ?", [reason])

    def set_tta_accuracy(self, run_id: int, accuracy: float) -> None:
        """The run's test accuracy with test-time augmentation (flip averaging), kept apart from the plain one."""
        self._write("UPDATE runs SET tta_accuracy = ? WHERE id = ?", [float(accuracy), run_id])

    def request_stop(self, run_id: int) -> None:
        """Ask a run to stop after its current batch; a queued run is stopped at once."""
        self._write("UPDATE runs SET stop_requested = 1 WHERE id = ?", [run_id])
        self._write("UPDATE runs SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                    [STOPPED, now_iso(), run_id, QUEUED])

    def stop_requested(self, run_id: int) -> bool:
        row = self.db.execute("SELECT stop_requested FROM runs WHERE id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def requeue(self, run_id: int) -> None:
        """Put an interrupted or failed run back in the queue, its old epochs dropped (and its
        checkpoint, so that it trains again from scratch)."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            self._write("DELETE FROM epochs WHERE run_id = ?", [run_id])
            self._write("UPDATE runs SET status = ?, error = NULL, finished_at = NULL, started_at = NULL, "
                        "best_epoch = NULL, best_val_accuracy = NULL, stop_requested = 0, progress = NULL, "
                        "end_reason = NULL, tta_accuracy = NULL "
                        "WHERE id = ?", [QUEUED, run_id])
            self.checkpoint_path(run_id).unlink(missing_ok=True)

    # -- continuing runs ---------------------------------------------------------------------
    def checkpoint_path(self, run_id: int) -> Path:
        """Where run `run_id`'s resumable checkpoint lives (lsc_core/checkpoint.py writes it)."""
        return self.artifacts / str(run_id) / CHECKPOINT_FILE

    def resume(self, run_id: int, status: str = QUEUED) -> None:
        """Continue a stopped, interrupted or failed run from its checkpoint: queued for a worker
        (or `status` RUNNING: owned by this process, which trains it now), its epochs kept.

        StoreError with one line for a run that is queued or running, completed (extend it
        instead), or has epochs but no checkpoint (trained before runs kept one). A run that never
        finished an epoch starts from the beginning."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            self._continuable(run_id, RESUMABLE_STATES, "resumed")
            self._write("UPDATE runs SET error = NULL, finished_at = NULL WHERE id = ?", [run_id])
            self._set_continuing(run_id, status)

    def extend(self, run_id: int, epochs: int, status: str = QUEUED) -> None:
        """Train a completed run `epochs` more epochs from its checkpoint: its config's epochs
        (a transfer run's fine-tuning epochs, when it has them) and `epochs_planned` are raised,
        and it is queued (or RUNNING, see `resume`). A schedule that depends on the run's length
        (cosine, one-cycle) is stretched over the new length from here on.

        StoreError with one line for a run that is not completed, has no checkpoint, or for
        `epochs` below 1 or past the limit of a config's epochs."""
        from dataclasses import replace

        from .config import ConfigError, validate

        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise StoreError(f"run {run_id} can be extended by 1 epoch or more, not {epochs!r}")
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            run = self._continuable(run_id, (COMPLETED,), "extended")
            if run.config is None:
                raise StoreError(f"run {run_id} cannot be extended: its config cannot be read ({run.config_error})")
            backbone = run.config.backbone
            if backbone is not None and backbone.fine_tune_epochs > 0:  # more of its last phase
                longer = run.config.replace(backbone=replace(backbone, fine_tune_epochs=backbone.fine_tune_epochs
                                                             + epochs))
            else:
                longer = run.config.replace(epochs=run.config.epochs + epochs)
            try:
                validate(longer)
            except ConfigError as exc:
                raise StoreError(f"run {run_id} cannot be extended by {epochs} epoch(s): {exc}") from None
            self._write("UPDATE runs SET config = ?, epochs_planned = ?, error = NULL, finished_at = NULL, "
                        "end_reason = NULL, tta_accuracy = NULL WHERE id = ?",
                        [longer.to_json(), longer.total_epochs, run_id])
            self._set_continuing(run_id, status)

    def _continuable(self, run_id: int, statuses: tuple[str, ...], verb: str) -> Run:
        """The run, if it is in one of `statuses` and has a checkpoint; StoreError saying why not."""
        run = self.get_run(run_id)
        if run is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        if run.status not in statuses:
            hint = {QUEUED: "it is queued already", RUNNING: "it is running",
                    COMPLETED: "it completed all its epochs: extend it by N epochs instead"}.get(
                run.status, "only a completed run can be extended; resume it instead")
            raise StoreError(f"run {run_id} is {run.status} and cannot be {verb}: {hint}")
        if self.continue_action(run) is None:
            raise StoreError(f"run {run_id} has no checkpoint to continue from (it was trained before runs kept "
                             "one); clone it to train it again from scratch")
        return run

    def continue_action(self, run: Run) -> str | None:
        """How `run` can go on: "resume" (stopped, interrupted or failed: from its checkpoint, or from
        the beginning when it never finished an epoch, as it then has nothing to keep), "extend"
        (completed, with a checkpoint: N more epochs), or None (active, or epochs stored without a
        checkpoint: trained before runs kept one)."""
        has_checkpoint = self.checkpoint_path(run.id).is_file()
        if run.status == COMPLETED:
            return "extend" if has_checkpoint else None
        if run.status in RESUMABLE_STATES:
            return "resume" if has_checkpoint or not self.epochs(run.id) else None
        return None

    def _set_continuing(self, run_id: int, status: str) -> None:
        assert status in ACTIVE_STATES, status
        # Running: owned by this process from now on, as create_run(status=RUNNING) does.
        owner = {**_ownership(), "heartbeat_at": time.time()} if status == RUNNING else \
            {column: None for column in ("pid", "host", "heartbeat_at", *OWNER_COLUMNS)}
        self._write("UPDATE runs SET status = ?, stop_requested = 0, progress = NULL, "
                    + ", ".join(f"{column} = ?" for column in owner) + " WHERE id = ?",
                    [status, *owner.values(), run_id])

    def drop_epochs_after(self, run_id: int, epoch: int, owner: str | None = None) -> None:
        """Forget the epochs of a run after `epoch` (those a checkpoint it resumes from does not hold),
        keeping its best epoch in step; `owner` guards it as the trainer's other writes."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            self._update_run_as(run_id, owner, "heartbeat_at = ?", [time.time()])  # NotOwner rolls back
            if self._write("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", [run_id, epoch]).rowcount:
                self._write(_BEST_EPOCH_UPDATE, [run_id, time.time(), run_id])

    def mark_dead_runs_interrupted(self) -> list[int]:
        """Runs left 'running' by a process that died become interrupted, judged by
        liveness.is_dead (heartbeat, boot id, PID namespace, process start time); returns their
        ids. Cheap enough for every live refresh of a page. A read-only store is left as it is."""
        if self.read_only:
            return []
        dead = []
        rows = self.db.query(f"SELECT id, heartbeat_at, pid, host, {', '.join(OWNER_COLUMNS)} FROM runs "
                             "WHERE status = ?", [RUNNING])
        for row in list(rows):
            if not liveness.is_dead(_owner_of(row), row["heartbeat_at"]):
                continue
            # Only if nothing changed since it was judged: a heartbeat written meanwhile keeps it running.
            if self._write("UPDATE runs SET status = ?, finished_at = ?, progress = NULL, "
                           "error = 'the process training this run ended before it finished' "
                           "WHERE id = ? AND status = ? AND heartbeat_at IS ? AND owner IS ?",
                           [INTERRUPTED, now_iso(), row["id"], RUNNING, row["heartbeat_at"], row["owner"]]).rowcount:
                dead.append(row["id"])
        return dead

    def get_run(self, run_id: int) -> Run | None:
        """The run `run_id`, or None when the store has no such run."""
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        return run_from_row(rows[0], self.folder) if rows else None

    def list_runs(self, status: str | None = None, search_id: int | None = None, tag: str | None = None,
                  archived: bool | None = None) -> list[Run]:
        """Runs, newest first; `tag` keeps those carrying it, `archived` True/False keeps only
        archived/unarchived ones (None: both)."""
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if search_id is not None:
            where.append("search_id = ?")
            params.append(search_id)
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ?)")
            params.append(tag)
        if archived is not None:
            where.append("COALESCE(archived, 0) = ?")
            params.append(int(archived))
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        folder = self.folder
        return [run_from_row(row, folder) for row in self.db.query(sql, params)]

    def run_record(self, run_id: int) -> dict | None:
        """Every stored column of a run, newer ones included, JSON columns decoded: what an
        archive carries to another store. Everything else reads runs through get_run."""
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            return None
        decoded = {key: json_object(rows[0][key]) for key in ("config", "versions", "progress")}
        return {**rows[0], **decoded, "tags": json_list(rows[0].get("tags"))}

    def epochs(self, run_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id]))

    def epoch_counts(self) -> dict[int, int]:
        """Epochs logged per run, counted in SQLite (cheaper than reading every epoch row)."""
        return dict(self.db.execute("SELECT run_id, COUNT(*) FROM epochs GROUP BY run_id").fetchall())

    def epochs_for(self, run_ids: Iterable[int]) -> list[dict]:
        ids = list(run_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self.db.query(f"SELECT * FROM epochs WHERE run_id IN ({marks}) ORDER BY run_id, epoch", ids))

    # -- system metrics ----------------------------------------------------------------
    def log_system(self, run_id: int, sample: dict, owner: str | None = None) -> None:
        """One sample of the training process's CPU, memory (and GPU) use (see sysmetrics)."""
        columns = ("seconds", "cpu_percent", "memory_mb", "system_memory_percent", "gpu_percent", "gpu_memory_mb")
        values = [run_id, *(sample.get(c) for c in columns)]
        insert = f"INSERT INTO system_metrics (run_id, {', '.join(columns)}) SELECT ?{', ?' * len(columns)}"
        if owner is None:
            self._write(insert, values)
        elif self._write(insert + " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND status = ? AND owner = ?)",
                         [*values, run_id, RUNNING, owner]).rowcount == 0:
            raise self._not_owner(run_id)

    def system_metrics(self, run_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM system_metrics WHERE run_id = ? ORDER BY seconds", [run_id]))

    # -- keeping runs in order -------------------------------------------------------------
    def set_note(self, run_id: int, note: str) -> None:
        """A run's free-text note (shown as text, never as Markdown); empty clears it."""
        self._update_run(run_id, "note = ?", [note.strip() or None])

    def set_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (each checked by `clean_tag`); returns them sorted."""
        cleaned = sorted({clean_tag(tag) for tag in tags})
        self._update_run(run_id, "tags = ?", [json.dumps(cleaned) if cleaned else None])
        return cleaned

    def all_tags(self) -> list[str]:
        """Every tag used in the store, sorted."""
        return [row[0] for row in self.db.execute(
            "SELECT DISTINCT json_each.value FROM runs, json_each(runs.tags) ORDER BY 1")]

    def set_archived(self, run_id: int, archived: bool) -> None:
        """Archived runs are hidden from run lists unless asked for; nothing of them is removed."""
        self._update_run(run_id, "archived = ?", [int(archived)])

    def delete_run(self, run_id: int) -> None:
        """Remove a run: its epochs, predictions, system samples, study links and artifacts.

        A running run must be stopped first (its process would go on writing); a queued one
        is removed before a worker can claim it (the claim and this delete are both atomic).
        """
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            if row[0] == RUNNING:
                raise StoreError(f"run {run_id} is running: stop it first, then delete it")
            for table in ("epochs", "predictions", "system_metrics", "suite_runs"):
                self._write(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self._write("DELETE FROM runs WHERE id = ?", [run_id])
        folder = self.artifacts / str(run_id)
        # Only a direct child of the store's own folder (not a link leading elsewhere).
        if not folder.is_symlink() and folder.resolve().parent == self.artifacts:
            shutil.rmtree(folder, ignore_errors=True)

    def _update_run(self, run_id: int, assignment: str, params: list) -> None:
        if self._write(f"UPDATE runs SET {assignment} WHERE id = ?", [*params, run_id]).rowcount == 0:
            raise StoreError(f"no run {run_id} in {self.path}")

    # -- test-set predictions ------------------------------------------------------------
    def save_predictions(self, run_id: int, probabilities, fine_labels, coarse_labels, label_mode: str) -> None:
        """Store a run's test-set class probabilities (N, C) as float16 and the true labels.

        float16 keeps a fine run's 10,000 x 100 matrix at 2 MB; its 3 significant digits
        are plenty for ranking and for shares shown with one decimal.
        """
        import numpy as np

        probs = np.ascontiguousarray(probabilities, dtype=np.float16)
        labels = np.stack([np.asarray(fine_labels), np.asarray(coarse_labels)], axis=1).astype(np.uint8)
        assert probs.ndim == 2 and len(labels) == len(probs), (probs.shape, labels.shape)
        self._write("INSERT OR REPLACE INTO predictions (run_id, created_at, probabilities, labels, shape, "
                    "label_mode) VALUES (?, ?, ?, ?, ?, ?)",
                    [run_id, now_iso(), probs.tobytes(), labels.tobytes(), json.dumps(list(probs.shape)),
                     label_mode])

    def load_predictions(self, run_id: int) -> dict | None:
        """{probabilities (N, C) float16, fine (N,), coarse (N,) uint8, label_mode, created_at}, or None."""
        import numpy as np

        row = self.db.execute("SELECT probabilities, labels, shape, label_mode, created_at FROM predictions "
                              "WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            return None
        shape = tuple(json.loads(row[2]))
        labels = np.frombuffer(row[1], dtype=np.uint8).reshape(shape[0], 2)
        return {"probabilities": np.frombuffer(row[0], dtype=np.float16).reshape(shape),
                "fine": labels[:, 0], "coarse": labels[:, 1], "label_mode": row[3], "created_at": row[4]}

    # -- searches -------------------------------------------------------------------------
    def create_search(self, name: str, spec: str) -> int:
        """Record a search (its spec as JSON), status running; returns its id."""
        return self._write("INSERT INTO searches (name, status, spec, created_at) VALUES (?, 'running', ?, ?)",
                           [name, spec, now_iso()]).lastrowid

    def create_trial_once(self, config, search_id: int, source: str | None = None) -> int | None:
        """Queue a search trial unless a run of that search already has its name; its id, or None.

        Checked and inserted in one transaction, so two processes resuming one search at
        the same time cannot both create the trial.
        """
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            if self.db.execute("SELECT 1 FROM runs WHERE search_id = ? AND name = ?",
                               [search_id, config.display_name()]).fetchone():
                return None
            return self.create_run(config, search_id=search_id, source=source)

    def get_search(self, search_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM searches WHERE id = ?", [search_id]))
        return rows[0] if rows else None

    def list_searches(self, status: str | None = None) -> list[dict]:
        """Searches, newest first (optionally only those with `status`)."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return list(self.db.query(f"SELECT * FROM searches {where} ORDER BY id DESC", params))

    def set_search_status(self, search_id: int, status: str) -> None:
        finished = None if status == "running" else now_iso()
        self._write("UPDATE searches SET status = ?, finished_at = ? WHERE id = ?", [status, finished, search_id])

    def claim_run(self, run_id: int) -> bool:
        """Atomically take one queued run for this process; False if another process took it."""
        ownership = _ownership()
        cursor = self._write(
            "UPDATE runs SET status = ?, heartbeat_at = ?, started_at = ?, "
            + ", ".join(f"{c} = ?" for c in ownership) + " WHERE id = ? AND status = ?",
            [RUNNING, time.time(), now_iso(), *ownership.values(), run_id, QUEUED])
        return cursor.rowcount == 1

    # -- drafts -------------------------------------------------------------------------
    def save_draft(self, name: str, state: str) -> None:
        """Keep a form's state (JSON text) under `name`, replacing the last one."""
        self._write("INSERT OR REPLACE INTO drafts (name, state, updated_at) VALUES (?, ?, ?)", [name, state, now_iso()])

    def load_draft(self, name: str) -> str | None:
        """The form state last kept under `name`, or None (also in a read-only store older than drafts)."""
        if "drafts" not in self.db.table_names():
            return None
        row = self.db.execute("SELECT state FROM drafts WHERE name = ?", [name]).fetchone()
        return row[0] if row else None

    def delete_draft(self, name: str) -> None:
        self._write("DELETE FROM drafts WHERE name = ?", [name])

    def create_suite(self, name: str, spec: str, runs: dict[str, int]) -> int:
        """Record a suite and which run plays each of its experiments (key -> run id)."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            suite_id = self._write("INSERT INTO suites (name, spec, created_at) VALUES (?, ?, ?)",
                                   [name, spec, now_iso()]).lastrowid
            for key, run_id in runs.items():
                self._write("INSERT INTO suite_runs (suite_id, key, run_id) VALUES (?, ?, ?)", [suite_id, key, run_id])
        return suite_id

    def delete_suite(self, suite_id: int) -> None:
        """Forget a suite: its record and its experiment -> run links (the runs themselves stay)."""
        with self.db.conn:
            self._write("BEGIN IMMEDIATE")
            self._write("DELETE FROM suite_runs WHERE suite_id = ?", [suite_id])
            self._write("DELETE FROM suites WHERE id = ?", [suite_id])

    def list_suites(self) -> list[dict]:
        """Suites, newest first, each with `runs`: {experiment key: run id}."""
        suites = list(self.db.query("SELECT * FROM suites ORDER BY id DESC"))
        for suite in suites:
            suite["runs"] = {row["key"]: row["run_id"] for row in self.db.query(
                "SELECT key, run_id FROM suite_runs WHERE suite_id = ? ORDER BY rowid", [suite["id"]])}
        return suites


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: Any) -> float | None:
    """A float, or None for a missing or NaN value (a share of no errors is undefined)."""
    value = _float(value)
    return value if value is not None and math.isfinite(value) else None


MAX_TAG_LENGTH = 40


def clean_tag(tag: str) -> str:
    """A tag as stored: trimmed, non-empty, at most MAX_TAG_LENGTH characters, one line, no comma
    (the command line and the filter take comma-separated lists)."""
    text = " ".join(str(tag).split())
    if not text or len(text) > MAX_TAG_LENGTH or "," in text:
        raise StoreError(f"a tag must be 1 to {MAX_TAG_LENGTH} characters without commas, not {tag!r}")
    return text

