"""The dashboard is closed by default: started as the README says, it listens on 127.0.0.1 only."""
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent


def test_config_file_closes_the_dashboard():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert "127.0.0.1" == config["server"]["address"]
    assert 1 <= config["server"]["maxUploadSize"] <= 50  # megabytes; Streamlit's default is 200
    assert "none" == config["client"]["showErrorDetails"]  # false would mean "stacktrace"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["runner"]["postScriptGC"] is False  # a forced full collection per run starves the trainer
    assert "none" == config["server"]["fileWatcherType"]  # no walk over sys.modules after every run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(command: list[str], tmp_path, **env) -> tuple[subprocess.Popen, int]:
    """A dashboard server started by `command` (plus a free port) from the repository root, with a
    bare environment; returns it and its port once it answers its health check."""
    port = free_port()
    server = subprocess.Popen([*command, "--server.port", str(port), "--server.headless", "true"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3",
                                   "LSC_DB": str(tmp_path / "runs.sqlite"), **env})
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                assert b"ok" == reply.read()
                return server, port
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(f"the server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)


def listening(server: subprocess.Popen) -> set:
    return {(conn.laddr.ip, conn.laddr.port) for conn in psutil.Process(server.pid).net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN}


def test_streamlit_run_listens_on_loopback_only(tmp_path):
    server, port = start_server([sys.executable, "-m", "streamlit", "run", "app.py"], tmp_path)
    try:
        assert {("127.0.0.1", port)} == listening(server)
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_readme_server_trains_without_a_page_and_stops_the_run_cleanly_on_sigterm(tmp_path, tiny_npz, tiny_data):
    """`python serve.py`: the worker starts with the server, trains a queued run with no page
    open, and SIGTERM ends that run `stopped` with its best model saved."""
    import numpy as np

    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.model import load_run_model
    from lsc_core.store import RUNNING, STOPPED, Store

    store = Store(tmp_path / "runs.sqlite")
    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("flatten")), epochs=500,
                       batch_size=8, name="served")
    run_id = store.create_run(config)
    server, port = start_server([sys.executable, "serve.py"], tmp_path, LSC_DATA=str(tiny_npz))
    try:
        assert {("127.0.0.1", port)} == listening(server)
        deadline = time.time() + 120
        while len(store.epochs(run_id)) < 2 and time.time() < deadline:  # no page was ever opened
            time.sleep(0.2)
        assert RUNNING == store.get_run(run_id).status and store.epochs(run_id)
        server.send_signal(signal.SIGTERM)
        assert 0 == server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    run = store.get_run(run_id)
    assert (STOPPED, None, run.best_epoch) == (run.status, run.error, run.model_epoch)
    epochs = store.epochs(run_id)
    assert 2 <= len(epochs) < config.epochs
    model = load_run_model(run)  # saved, and it is the store's best epoch: it reproduces its accuracy
    predicted = np.argmax(model.predict(tiny_data.x_test.astype("float32"), verbose=0), axis=1)
    assert run.best_val_accuracy == pytest.approx(float(np.mean(predicted == tiny_data.labels("test", "coarse"))),
                                                  abs=1e-6)
