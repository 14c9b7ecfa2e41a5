"""Benchmark: seconds from kill -9 of a command-line run to `interrupted` on the open pages.

Starts the dashboard as the README says (`python serve.py`) on a temporary store, trains a
run with `python -m lsc_core train` beside it, opens that run on Runs and opens Home in
Chromium, then kills the trainer with SIGKILL and prints how long each page takes to show
the run as interrupted (Runs: its status line; Home: "Nothing is training"). A second
round first freezes the trainer (SIGSTOP), clicks Stop on Runs so that "Stopping…" is on
screen, then kills it: the time until "Stopping…" is gone and the run shows interrupted.

    python bench/liveness_timing.py [--port 8521]

Expected: about liveness.FRESH_HEARTBEAT_S (5 s) plus one live refresh (2 s; 0.5 s while
"Stopping…" is shown). Timings on a loaded machine are noisy.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from browser_timing import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _free_port, find_data, wait_idle  # noqa: E402
from lsc_core.store import Store  # noqa: E402


def start_server(db: Path, data_path: str, home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LSC_DB": str(db), "LSC_DATA": data_path}
    process = subprocess.Popen([sys.executable, "serve.py", "--server.headless", "true", "--server.port", str(port)],
                               cwd=REPO, env=env, stdout=open(home / "server.log", "w"), stderr=subprocess.STDOUT)
    import urllib.request

    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"the server did not start; see {home / 'server.log'}")


def start_trainer(db: Path, data_path: str) -> tuple[subprocess.Popen, int]:
    """A command-line run, returned once it has stored an epoch."""
    process = subprocess.Popen([sys.executable, "-m", "lsc_core", "train", "--preset", "seed-part1", "--epochs", "500",
                                "--limit", "500", "--batch-size", "16", "--data", data_path, "--db", str(db)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, deadline = Store(db), time.time() + 300
    while time.time() < deadline:
        cli = [run for run in store.list_runs(status="running") if run.source == "cli"]
        if cli and store.epochs(cli[0].id):
            return process, cli[0].id
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the command-line run did not start")


def kill_and_watch(browser, url: str, db: Path, data_path: str, stop_first: bool) -> dict[str, float | str]:
    trainer, run_id = start_trainer(db, data_path)
    try:
        return _kill_and_watch(browser, url, db, trainer, run_id, stop_first)
    finally:  # never leave the trainer behind, whatever failed
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()


def _kill_and_watch(browser, url: str, db: Path, trainer: subprocess.Popen, run_id: int,
                    stop_first: bool) -> dict[str, float | str]:
    runs, home = (browser.new_context(viewport=VIEWPORT).new_page() for _ in range(2))
    for page in (runs, home):
        page.set_default_timeout(180_000)  # a loaded machine: the first views import TensorFlow
    runs.goto(f"{url}/runs?run={run_id}")
    runs.get_by_text(f"run {run_id} · running").first.wait_for()
    home.goto(url)
    wait_idle(home)
    home.get_by_text("Training now").wait_for()
    if stop_first:  # the trainer frozen, so the Stop cannot end it: "Stopping…" stays until it is found dead
        trainer.send_signal(signal.SIGSTOP)
        main = runs.locator("[data-testid='stMain']")
        main.get_by_role("button", name="Stop", exact=True).click()
        main.get_by_role("button", name="Stopping").wait_for()
    trainer.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    trainer.wait()
    times = {}
    runs.get_by_text(f"run {run_id} · interrupted").first.wait_for()
    times["Runs"] = time.perf_counter() - killed
    home.get_by_text("Nothing is training").wait_for()
    times["Home"] = time.perf_counter() - killed
    if stop_first:
        times["Stopping… on screen after"] = float(runs.get_by_role("button", name="Stopping").count())
    times["store"] = Store(db).get_run(run_id).status
    runs.context.close()
    home.context.close()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--data", help="CIFAR-100 (default: LSC_DATA, ../shared/data/cifar100.npz, else synthetic)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="lsc-liveness-bench-"))
    data_path, db = find_data(args.data, home), home / "runs.sqlite"
    Store(db)
    port = args.port or _free_port()
    server = start_server(db, data_path, home, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for stop_first in (False, True):
                times = kill_and_watch(browser, f"http://127.0.0.1:{port}", db, data_path, stop_first)
                what = "kill -9 after Stop (Stopping… on screen)" if stop_first else "kill -9"
                print(f"{what}: interrupted on Runs {times['Runs']:.2f} s, Home {times['Home']:.2f} s; store: "
                      f"{times['store']}" + (f"; Stopping… buttons left: {times['Stopping… on screen after']:.0f}"
                                             if stop_first else ""), flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
