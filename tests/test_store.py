"""runs.sqlite: schema, migrations, run life cycle, dead-run recovery, locking."""
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from old_stores import OLD_EPOCH, OLD_RUN, write_migration_4_store
from lsc_core import liveness
from lsc_core.config import RunConfig, preset
from lsc_core.store import (COMPLETED, INTERRUPTED, QUEUED, RUNNING, STATUSES, STOPPED, MIGRATIONS, Run, Store,
                             StoreError)


def test_schema_has_the_design_columns(store):
    runs = set(store.db["runs"].columns_dict)
    assert {"id", "name", "status", "label_mode", "config", "params", "best_epoch", "best_val_accuracy",
            "created_at", "started_at", "finished_at", "error", "seed", "versions", "device"} <= runs
    assert {"run_id": int, "epoch": int, "loss": float, "accuracy": float, "val_loss": float,
            "val_accuracy": float, "seconds": float, "learning_rate": float}.items() <= \
        store.db["epochs"].columns_dict.items()
    assert ["run_id", "epoch"] == store.db["epochs"].pks
    assert "wal" == store.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert len(MIGRATIONS) == store.db.execute("PRAGMA user_version").fetchone()[0]


def test_reopening_migrates_nothing_twice(store):
    run_id = store.create_run(preset("seed-part1"))
    again = Store(store.path)
    assert [run_id] == [run.id for run in again.list_runs()]


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this code"):
        Store(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store(path)


def test_run_life_cycle_and_best_epoch(store):
    run_id = store.create_run(preset("seed-part1", epochs=3))
    run = store.get_run(run_id)
    assert (QUEUED, f"seed-part1-{run_id}", "coarse", 3) == (run.status, run.name, run.label_mode,
                                                               run.epochs_planned)
    assert preset("seed-part1", epochs=3) == run.config
    assert run_id == store.claim_next_queued().id
    assert store.claim_next_queued() is None
    for epoch, val in enumerate([0.2, 0.5, 0.4], start=1):
        store.log_epoch(run_id, epoch, {"loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": val}, 1.5)
    store.finish_run(run_id, COMPLETED)
    run = store.get_run(run_id)
    assert (COMPLETED, 2, 0.5) == (run.status, run.best_epoch, run.best_val_accuracy)
    assert [1, 2, 3] == [row["epoch"] for row in store.epochs(run_id)]


def test_stop_request_on_a_queued_run_stops_it_at_once(store):
    run_id = store.create_run(preset("seed-part1"))
    store.request_stop(run_id)
    assert STOPPED == store.get_run(run_id).status
    assert store.claim_next_queued() is None


def test_run_of_a_dead_process_becomes_interrupted_with_epochs_kept(tmp_path):
    path = tmp_path / "runs.sqlite"
    # A real process creates a running run, writes an epoch and dies without finishing it.
    code = ("import sys; from lsc_core.store import Store, RUNNING; from lsc_core.config import preset;"
            "s = Store(sys.argv[1]); r = s.create_run(preset('seed-part1'), status=RUNNING);"
            "s.log_epoch(r, 1, {'loss': 1.0, 'accuracy': 0.5, 'val_loss': 1.1, 'val_accuracy': 0.4}, 2.0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    store = Store(path)
    (run,) = store.list_runs()
    assert RUNNING == run.status  # a fresh heartbeat is proof of life, whatever the pid says
    store.db.execute("UPDATE runs SET heartbeat_at = heartbeat_at - ?", [liveness.FRESH_HEARTBEAT_S])  # time passes
    assert [run.id] == store.mark_dead_runs_interrupted()
    assert INTERRUPTED == store.get_run(run.id).status
    assert 1 == len(store.epochs(run.id))


def test_live_run_of_this_process_is_not_interrupted(store):
    run_id = store.create_run(preset("seed-part1"), status=RUNNING)
    assert [] == Store(store.path).mark_dead_runs_interrupted()
    assert RUNNING == store.get_run(run_id).status


def test_a_writer_holding_the_lock_gives_a_clear_error_and_loses_nothing(store, monkeypatch):
    import lsc_core.store as store_module

    run_id = store.create_run(preset("seed-part1"))
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    impatient = Store(store.path)  # connects with the short timeout
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(StoreError, match="locked by another writer"):
            impatient.log_epoch(run_id, 1, {"loss": 1.0, "val_accuracy": 0.1}, 1.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    impatient.log_epoch(run_id, 1, {"loss": 1.0, "val_accuracy": 0.1}, 1.0)  # works once the lock is free
    assert [1] == [row["epoch"] for row in store.epochs(run_id)]


def test_each_thread_gets_its_own_connection(store):
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.db.conn))
    thread.start()
    thread.join()
    assert seen[0] is not store.db.conn


def test_an_older_store_is_upgraded_in_place(tmp_path):
    import sqlite_utils

    from lsc_core import store as store_module

    path = tmp_path / "old.sqlite"
    old = sqlite_utils.Database(path)
    for step in MIGRATIONS[:3]:  # a store written before runs had a source
        step(old)
    old.execute("PRAGMA user_version = 3")
    old["runs"].insert({"name": "trial", "status": "completed", "config": "{}", "created_at": "x", "search_id": 1})
    old.conn.commit()
    old.conn.close()
    upgraded = Store(path)
    assert len(store_module.MIGRATIONS) == upgraded.db.execute("PRAGMA user_version").fetchone()[0]
    assert ["search"] == [run.source for run in upgraded.list_runs()]


def test_a_migration_4_store_gains_throughput_and_speed_columns_with_its_epochs_kept(tmp_path):
    path = write_migration_4_store(tmp_path / "v4.sqlite", runs=[OLD_RUN], epochs=[OLD_EPOCH])
    upgraded = Store(path)
    assert [{"run_id": 1, "epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": 0.25,
             "seconds": 30.0, "train_images_per_s": None, "val_images_per_s": None, "within_superclass": None,
             "val_within_superclass": None, "learning_rate": None}] == upgraded.epochs(1)
    speed = {"mixed_precision": None, "xla": None, "steps_per_execution": None, "data_on_device": None,
             "replicas": None}
    run = upgraded.get_run(1)
    assert speed == {k: getattr(run, k) for k in speed}


def test_a_run_records_its_speed_settings_and_each_epoch_its_images_per_second(store):
    run_id = store.create_run(preset("seed-part1"), status=RUNNING)
    speed = {"mixed_precision": True, "xla": False, "steps_per_execution": 4, "data_on_device": True,
             "replicas": 2}
    store.start_run(run_id, params=10, versions={}, device="GPU: test", speed=speed)
    store.log_epoch(run_id, 1, {"loss": 1.0}, 2.5, train_images_per_s=4000.0, val_images_per_s=12000.0)
    run = store.get_run(run_id)
    assert {"mixed_precision": 1, "xla": 0, "steps_per_execution": 4, "data_on_device": 1, "replicas": 2,
            "device": "GPU: test"} == {k: getattr(run, k) for k in [*speed, "device"]}
    assert (4000.0, 12000.0) == tuple(store.epochs(run_id)[0][k] for k in ("train_images_per_s",
                                                                             "val_images_per_s"))


def test_runs_record_where_they_were_started(store):
    assert "cli" == store.get_run(store.create_run(preset("seed-part1"), status=RUNNING, source="cli")).source
    assert "search" == store.get_run(store.create_run(preset("seed-part1"), search_id=3)).source


def test_a_live_but_silent_run_of_this_host_is_not_interrupted(store):
    import lsc_core.store as store_module

    run_id = store.create_run(preset("seed-part1"), status=RUNNING)  # owned by this live process
    store.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?",
                     [time.time() - 10 * store_module.STALE_HEARTBEAT_S, run_id])
    assert [] == Store(store.path).mark_dead_runs_interrupted()


def test_a_silent_run_of_another_host_is_interrupted(store):
    run_id = store.create_run(preset("seed-part1"), status=RUNNING)
    store.db.execute("UPDATE runs SET host = 'elsewhere', heartbeat_at = 0 WHERE id = ?", [run_id])
    assert [run_id] == store.mark_dead_runs_interrupted()
    assert INTERRUPTED == store.get_run(run_id).status


def test_model_paths_are_kept_relative_to_the_artifacts(store, tmp_path):
    import shutil

    run_id = store.create_run(preset("seed-part1"))
    model = store.artifacts / str(run_id) / "best.keras"
    store.set_model_path(run_id, model)
    assert f"{run_id}/best.keras" == store.db.execute("SELECT model_path FROM runs").fetchone()[0]
    moved = tmp_path / "moved"
    moved.mkdir()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file before copying it
    shutil.copy(store.path, moved / "runs.sqlite")
    # The copy keeps the store's folder name, under artifacts/ beside its new place.
    assert moved / "artifacts" / store.artifacts.name / str(run_id) / "best.keras" == Store(
        moved / "runs.sqlite").get_run(run_id).model_path


def test_drafts_are_kept_by_name_and_a_migration_4_store_gains_them(tmp_path):
    path = write_migration_4_store(tmp_path / "v4.sqlite")
    store = Store(path)
    assert store.load_draft("build") is None
    store.save_draft("build", '{"a": 1}')
    store.save_draft("build", '{"a": 2}')
    assert '{"a": 2}' == Store(path).load_draft("build")
    store.delete_draft("build")
    assert store.load_draft("build") is None


def test_a_migration_4_store_gains_the_recipe_columns_and_keeps_its_epochs(tmp_path):
    import sqlite_utils

    from lsc_core import store as store_module

    path = write_migration_4_store(tmp_path / "v4.sqlite", runs=[OLD_RUN], epochs=[OLD_EPOCH])
    old = sqlite_utils.Database(path)
    store_module._migration_recipe(old)  # so that Store runs it a second time (e.g. two processes racing): it adds nothing
    old.conn.close()
    upgraded = Store(path)
    assert [(1, 0.25, None)] == [(row["epoch"], row["val_accuracy"], row["learning_rate"])
                                 for row in upgraded.epochs(1)]
    assert (None, None) == (upgraded.get_run(1).end_reason, upgraded.get_run(1).tta_accuracy)


def test_runs_come_out_typed_and_frozen(store):
    import dataclasses

    run = store.get_run(store.create_run(preset("seed-part1", epochs=2)))
    assert (Run, RunConfig, {}, {}, False, None) == (type(run), type(run.config), run.progress, run.versions,
                                                    run.stop_requested, run.model_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = COMPLETED
    assert store.get_run(run.id + 1) is None


def test_an_unreadable_stored_config_is_kept_and_said(store):
    run_id = store.create_run(preset("seed-part1"))
    store.db.execute("UPDATE runs SET config = ? WHERE id = ?", ['{"colour": "red"}', run_id])
    run = store.get_run(run_id)
    assert (None, {"colour": "red"}) == (run.config, run.stored_config)
    assert "colour" in run.config_error


def test_the_schema_refuses_an_unknown_status(store):
    run_id = store.create_run(preset("seed-part1"))
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
        store.db.execute("UPDATE runs SET status = 'paused' WHERE id = ?", [run_id])
    assert QUEUED == store.get_run(run_id).status


def test_a_migration_4_store_gets_the_status_check_keeping_runs_epochs_and_references(tmp_path):
    path = write_migration_4_store(
        tmp_path / "v4.sqlite",
        runs=[{"id": 7, "name": "old", "status": "completed", "config": preset("seed-part1").to_json(),
               "created_at": "2026-01-01T00:00:00+00:00", "best_epoch": 1, "source": "cli"}],
        epochs=[{"run_id": 7, "epoch": 1, "loss": 1.0, "val_accuracy": 0.3}],
        suites=[{"id": 1, "name": "s", "spec": "{}", "created_at": "x"}],
        suite_runs=[{"suite_id": 1, "key": "k", "run_id": 7}])
    upgraded = Store(path)
    run = upgraded.get_run(7)
    assert ("old", COMPLETED, 1, "cli", [1]) == (run.name, run.status, run.best_epoch, run.source,
                                                [row["epoch"] for row in upgraded.epochs(7)])
    assert ["idx_runs_status"] == [index.name for index in upgraded.db["runs"].indexes]
    assert [] == upgraded.db.execute("PRAGMA foreign_key_check").fetchall()
    assert 1 == upgraded.db.execute("PRAGMA foreign_keys").fetchone()[0]
    create = upgraded.db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    assert f"CHECK (status IN ({', '.join(repr(s) for s in STATUSES)}))" in create
    with pytest.raises(sqlite3.IntegrityError):
        upgraded.db.execute("UPDATE runs SET status = 'paused' WHERE id = 7")
    with pytest.raises(sqlite3.IntegrityError):  # references still enforced after the rebuild
        upgraded.db.execute("INSERT INTO epochs (run_id, epoch) VALUES (99, 1)")


def test_processes_opening_a_new_store_at_one_moment_all_get_it(tmp_path):
    """Four processes create one store at the same instant: none takes the half-made store for
    another application's database or gives up on the lock the switch to WAL needs."""
    code = ("import sys, time\n"
            "from lsc_core.store import Store, StoreError\n"
            "start = float(sys.argv[2])\n"
            "while time.time() < start: pass\n"
            "try:\n    Store(sys.argv[1])\nexcept StoreError as exc:\n    print('error:', exc)\n")
    for attempt in range(5):
        start = time.time() + 3  # after every process has imported lsc_core
        db = tmp_path / f"new-{attempt}.sqlite"
        processes = [subprocess.Popen([sys.executable, "-c", code, str(db), str(start + k * 0.002)],
                                      cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
                     for k in range(4)]
        assert [""] * 4 == [process.communicate()[0] for process in processes]
        assert len(MIGRATIONS) == sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
