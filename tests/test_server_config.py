"""The dashboard is closed by default: started as the README says, it listens on 127.0.0.1 only."""
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def test_config_file_closes_the_dashboard():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert "127.0.0.1" == config["server"]["address"]
    assert 1 <= config["server"]["maxUploadSize"] <= 50  # megabytes; Streamlit's default is 200
    assert "none" == config["client"]["showErrorDetails"]  # false would mean "stacktrace"
    assert config["browser"]["gatherUsageStats"] is False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_started_as_the_readme_says_listens_on_loopback_only(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                              "LSC_DB": str(tmp_path / "runs.sqlite")})
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    assert b"ok" == reply.read()
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.5)
        listening = {conn.laddr for conn in psutil.Process(server.pid).net_connections(kind="inet")
                     if conn.status == psutil.CONN_LISTEN}
        assert {("127.0.0.1", port)} == {(address.ip, address.port) for address in listening}
    finally:
        server.terminate()
        server.wait(timeout=30)
