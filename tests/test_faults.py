"""Fault injection, the lifecycle half: runs killed at random points and resumed, and two
servers on one store with one of them killed mid-run. Nothing stored may be lost.

The other halves live beside the code they hit: hostile configs, stores and model files,
read-only and full file systems in test_hostile.py; SIGTERM and SIGINT in test_shutdown.py;
liveness in test_liveness.py. bench/faults.py is the long version of the first test here.
"""
import importlib.util
import re
import signal
import sys
from pathlib import Path

from lsc_core.config import LayerSpec, RunConfig
from lsc_core.store import COMPLETED, INTERRUPTED, RUNNING, Store
from test_server_config import start_server
from waiting import wait_for

REPO = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("faults_bench", REPO / "bench" / "faults.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_runs_killed_at_random_points_resume_without_losing_an_epoch(tiny_npz, capsys):
    faults = load_bench()
    code = faults.main(["--trials", "3", "--epochs", "3", "--seed", "11", "--data", str(tiny_npz)])
    out = capsys.readouterr().out
    counts = re.search(r"faults injected: (\d+) \((\d+) into a run in training\); runs resumed: (\d+); "
                       r"epochs lost: (\d+); runs with a problem: (\d+) of 3", out)
    assert counts, out
    injected, in_training, resumed, lost, problems = map(int, counts.groups())
    assert (0, 0, 0) == (code, lost, problems), out
    assert in_training >= 1 and resumed >= 1, out  # the faults did hit runs in training


def tiny_config(name: str) -> RunConfig:
    return RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("flatten")), epochs=6,
                     batch_size=8, name=name)


def test_two_servers_on_one_store_train_each_run_once_and_a_killed_one_loses_nothing(tmp_path, tiny_npz):
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    run_ids = [store.create_run(tiny_config(f"shared-{n}")) for n in range(4)]
    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(start_server([sys.executable, "serve.py"], tmp_path / name, LSC_DB=str(db),
                                        LSC_DATA=str(tiny_npz))[0])
        pids = {server.pid: server for server in servers}

        def a_run_in_mid_training():
            for run in store.list_runs(status=RUNNING):
                if run.pid in pids and store.epochs(run.id):
                    return run
            return None

        victim = wait_for(a_run_in_mid_training, 180, "a server to be in mid-run")
        pids[victim.pid].send_signal(signal.SIGKILL)
        pids[victim.pid].wait()
        # Any store that looks judges it: its heartbeat goes stale and its process is gone.
        wait_for(lambda: Store(db).get_run(victim.id).status == INTERRUPTED, 30, "the killed run to be interrupted")
        kept = len(store.epochs(victim.id))
        assert kept >= 1
        store.resume(victim.id)  # queued again: the surviving server takes it up from its checkpoint
        wait_for(lambda: all(store.get_run(r).status == COMPLETED for r in run_ids), 240, "every run to complete")
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=60)
    for run_id in run_ids:
        run = store.get_run(run_id)
        # Each epoch once, trained by one process at a time, and the saved model is the best epoch's.
        assert [1, 2, 3, 4, 5, 6] == [row["epoch"] for row in store.epochs(run_id)], run_id
        assert run.best_epoch == run.model_epoch and run.model_path.is_file()
