"""Liveness: a run is dead when its heartbeat is stale and its owner provably gone; writes from a
process that no longer owns a run are refused and end its training. Real processes, real stores."""
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from owners import dead_identity, hand_over, identity_of
from old_stores import OLD_RUN, write_migration_4_store
from lsc_core import liveness
from lsc_core.config import preset
from lsc_core.store import INTERRUPTED, RUNNING, NotOwner, Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STALE = liveness.FRESH_HEARTBEAT_S + 1  # seconds: no longer proof of life


@pytest.fixture
def sleeper():
    """A real live process that is not a trainer."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def running(store) -> int:
    return store.create_run(preset("seed-part1"), status=RUNNING)


def test_this_process_identity_is_read_from_the_kernel():
    me = liveness.this_process()
    assert (os.getpid(), me.pid_ns) == (me.pid, os.readlink("/proc/self/ns/pid"))
    assert open(liveness.BOOT_ID_FILE).read().strip() == me.boot_id
    assert liveness.process_matches(me.pid, me.started)
    assert str(me.pid) in me.token and me.boot_id in me.token


def test_a_fresh_heartbeat_is_alive_whatever_its_owner_looks_like(store):
    run_id = running(store)
    foreign = replace(dead_identity(), boot_id="another-boot", pid_ns="pid:[1]", host="elsewhere")
    hand_over(store, run_id, foreign, heartbeat_age_s=1)
    assert [] == Store(store.path).mark_dead_runs_interrupted()
    hand_over(store, run_id, dead_identity(), heartbeat_age_s=1)  # a gone process of this machine, beat 1 s ago
    assert [] == store.mark_dead_runs_interrupted()
    assert RUNNING == store.get_run(run_id).status


def test_a_reused_pid_is_dead_the_same_process_alive_but_silent(store, sleeper):
    run_id = running(store)
    hand_over(store, run_id, identity_of(sleeper.pid), heartbeat_age_s=60)
    assert [] == store.mark_dead_runs_interrupted()  # the very process, silent for a minute: alive
    reused = replace(identity_of(sleeper.pid), started=identity_of(sleeper.pid).started - 3600)
    hand_over(store, run_id, reused, heartbeat_age_s=STALE)  # that pid now belongs to another process
    assert [run_id] == store.mark_dead_runs_interrupted()
    assert INTERRUPTED == store.get_run(run_id).status


def test_an_owner_of_another_boot_is_dead_only_after_a_long_silence(store, sleeper):
    run_id = running(store)
    # Another boot (or namespace, or host) cannot be asked; its pid here means nothing.
    for other in ({"boot_id": "another-boot"}, {"pid_ns": "pid:[4026532999]"}, {"host": "elsewhere"}):
        hand_over(store, run_id, replace(identity_of(sleeper.pid), **other), heartbeat_age_s=20)
        assert [] == store.mark_dead_runs_interrupted()
    hand_over(store, run_id, replace(dead_identity(), boot_id="another-boot"), heartbeat_age_s=20)
    assert [] == store.mark_dead_runs_interrupted()
    hand_over(store, run_id, replace(identity_of(sleeper.pid), boot_id="another-boot"), heartbeat_age_s=400)
    assert [run_id] == store.mark_dead_runs_interrupted()


def test_off_linux_without_pid_namespaces_the_process_table_is_still_asked(sleeper):
    me = replace(liveness.this_process(), pid_ns=None)
    alive, gone = replace(identity_of(sleeper.pid), pid_ns=None), replace(dead_identity(), pid_ns=None)
    assert not liveness.is_dead(alive, time.time() - 60, me=me)
    assert liveness.is_dead(gone, time.time() - STALE, me=me)
    assert not liveness.is_dead(gone, time.time() - STALE, me=liveness.this_process())  # one side in a namespace


def test_a_row_without_an_owner_waits_for_the_long_silence(store):
    run_id = running(store)
    store.db.execute("UPDATE runs SET owner = NULL, boot_id = NULL, process_started = NULL, heartbeat_at = ? "
                     "WHERE id = ?", [time.time() - 60, run_id])
    assert [] == store.mark_dead_runs_interrupted()
    store.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [time.time() - 400, run_id])
    assert [run_id] == store.mark_dead_runs_interrupted()


def test_the_owner_migration_upgrades_an_old_store(tmp_path):
    path = write_migration_4_store(tmp_path / "v4.sqlite", runs=[{**OLD_RUN, "status": "running", "pid": 1,
                                                                  "host": "old", "heartbeat_at": time.time()}])
    store = Store(path)
    assert {"owner", "boot_id", "pid_ns", "process_started"} <= set(store.db["runs"].columns_dict)
    assert RUNNING == store.get_run(1).status  # a fresh heartbeat, even without a recorded owner
    run_id = running(store)
    row = store.run_record(run_id)
    assert liveness.this_process().token == row["owner"]
    assert (os.getpid(), liveness.this_process().boot_id) == (row["pid"], row["boot_id"])


def test_guarded_writes_are_refused_once_the_run_is_not_this_process_s(store):
    run_id = running(store)
    me = liveness.this_process().token
    store.log_epoch(run_id, 1, {"loss": 1.0, "val_accuracy": 0.2}, 1.0, owner=me)
    store.finish_run(run_id, INTERRUPTED)  # another process judged it dead
    for write in (lambda: store.heartbeat(run_id, {}, owner=me),
                  lambda: store.log_epoch(run_id, 2, {"loss": 0.5, "val_accuracy": 0.9}, 1.0, owner=me),
                  lambda: store.set_model_path(run_id, "elsewhere.keras", owner=me),
                  lambda: store.set_end_reason(run_id, "no", owner=me),
                  lambda: store.log_system(run_id, {"seconds": 1.0}, owner=me),
                  lambda: store.finish_run(run_id, "completed", owner=me),
                  lambda: store.start_run(run_id, params=1, versions={}, device="x", owner=me)):
        with pytest.raises(NotOwner, match=f"run {run_id} is no longer owned by this process"):
            write()
    run = store.get_run(run_id)
    assert (INTERRUPTED, 1, 0.2, None) == (run.status, len(store.epochs(run_id)), run.best_val_accuracy,
                                           run.model_path)
    assert [] == store.system_metrics(run_id)
    # Taken over by another process: its token is not this one's either.
    hand_over(store, run_id, dead_identity())
    with pytest.raises(NotOwner, match="now running"):
        store.heartbeat(run_id, {}, owner=me)


def test_a_trainer_whose_run_was_taken_stops_at_its_next_write(store, tiny_data):
    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.train import train_run

    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("flatten")), epochs=200,
                       batch_size=8, name="taken")
    run_id = store.create_run(config, status=RUNNING)
    result = {}
    trainer = threading.Thread(target=lambda: result.update(run=train_run(store, run_id, load_data=lambda: tiny_data)))
    trainer.start()
    other = Store(store.path)  # another process's view of the store
    deadline = time.time() + 120
    while not other.epochs(run_id) and time.time() < deadline:
        time.sleep(0.05)
    other.finish_run(run_id, INTERRUPTED, "judged dead by another process")
    epochs = len(other.epochs(run_id))
    model = store.artifacts / str(run_id) / "best.keras"
    saved = model.stat().st_mtime_ns if model.exists() else None
    trainer.join(timeout=60)
    assert not trainer.is_alive()  # training ended, long before its 200 epochs
    run = other.get_run(run_id)
    assert (INTERRUPTED, "judged dead by another process") == (run.status, run.error)
    assert epochs == len(other.epochs(run_id)) and epochs < 200
    assert saved == (model.stat().st_mtime_ns if model.exists() else None)  # no model written after it
    time.sleep(1.5)  # no heartbeat either
    assert run.heartbeat_at == other.get_run(run_id).heartbeat_at


def test_a_killed_cli_run_is_interrupted_within_a_few_heartbeats(tmp_path, tiny_npz):
    db = tmp_path / "runs.sqlite"
    trainer = subprocess.Popen([sys.executable, "-m", "lsc_core", "train", "--preset", "seed-part1", "--epochs",
                                "200", "--batch-size", "16", "--data", str(tiny_npz), "--db", str(db)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (db.exists() and Store(db).list_runs(status=RUNNING)
                                               and Store(db).epoch_counts()):
            time.sleep(0.2)
        (run,) = Store(db).list_runs(status=RUNNING)
        assert [] == Store(db).mark_dead_runs_interrupted()  # alive and beating
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    killed = time.time()
    watcher = Store(db)  # e.g. the dashboard's, re-checking as its live views refresh
    while watcher.get_run(run.id).status == RUNNING and time.time() - killed < 30:
        watcher.mark_dead_runs_interrupted()
        time.sleep(0.25)
    assert INTERRUPTED == watcher.get_run(run.id).status
    assert time.time() - killed < liveness.FRESH_HEARTBEAT_S + 3
    assert watcher.epochs(run.id)  # its epochs kept
