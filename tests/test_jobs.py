"""The background worker: queued runs train one after another; stop; queue survives restarts."""
import pytest

from lsc_core.config import LayerSpec, RunConfig
from lsc_core.jobs import JobManager
from lsc_core.store import COMPLETED, QUEUED, STOPPED, Store
from waiting import wait_for

SMALL = (LayerSpec.make("conv2d", filters=4), LayerSpec.make("maxpool2d", pool_size=4), LayerSpec.make("flatten"))


def config(**changes):
    return RunConfig(layers=SMALL, epochs=1, batch_size=50, label_mode="fine").replace(**changes)


@pytest.fixture
def manager(tmp_path, tiny_data):
    jobs = JobManager(tmp_path / "runs.sqlite", load_data=lambda: tiny_data)
    yield jobs
    jobs.shutdown(timeout=60)


def test_queued_runs_train_in_order_in_the_background(manager):
    first, second = manager.submit(config(name="first")), manager.submit(config(name="second"))
    wait_for(lambda: manager.store.get_run(second).status == COMPLETED)
    runs = {run.id: run for run in manager.store.list_runs()}
    assert (COMPLETED, COMPLETED) == (runs[first].status, runs[second].status)
    assert runs[first].finished_at <= runs[second].started_at
    assert manager.device.startswith(("CPU", "GPU"))


def test_stop_ends_the_running_run_and_drops_a_queued_one(manager):
    running = manager.submit(config(epochs=500, batch_size=8))
    queued = manager.submit(config())
    wait_for(lambda: manager.current_run_id == running)
    manager.stop(queued)
    manager.stop(running)
    wait_for(lambda: manager.store.get_run(running).status == STOPPED)
    assert STOPPED == manager.store.get_run(queued).status
    assert len(manager.store.epochs(running)) < 500


def test_a_run_queued_before_a_restart_is_trained_after_it(tmp_path, tiny_data):
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(config())  # queued by a server that then went away
    assert QUEUED == store.get_run(run_id).status
    jobs = JobManager(store.path, load_data=lambda: tiny_data)
    try:
        wait_for(lambda: jobs.store.get_run(run_id).status == COMPLETED)
    finally:
        jobs.shutdown(timeout=60)


def test_an_impossible_config_is_refused_before_it_is_queued(manager):
    from lsc_core.config import ConfigError

    with pytest.raises(ConfigError, match="layer 1"):
        manager.submit(RunConfig(layers=(LayerSpec.make("dense"),)))
    assert [] == manager.store.list_runs()


def test_the_worker_survives_a_run_it_cannot_read(manager):
    store = manager.store
    with store.db.conn:  # one transaction: the worker cannot claim the run before its config is broken
        store.db.execute("BEGIN IMMEDIATE")
        broken = store.create_run(config())
        store.db.execute("UPDATE runs SET config = ? WHERE id = ?", ['{"layers": 7}', broken])
    good = manager.submit(config(name="after-the-broken-one"))
    wait_for(lambda: manager.store.get_run(good).status == COMPLETED)
    assert "failed" == manager.store.get_run(broken).status
    assert manager.alive


def test_one_manager_per_store_in_a_process(tmp_path, tiny_data):
    from lsc_core.jobs import manager_for

    first = manager_for(tmp_path / "runs.sqlite", load_data=lambda: tiny_data)
    try:
        assert first is manager_for(str(tmp_path / "." / "runs.sqlite"))
    finally:
        first.shutdown(timeout=60)
