"""Benchmark: how long a person waits in Chromium for Evaluate, Predict and Stop.

Starts `streamlit run app.py` on a store it prepares in a temporary folder (or on
`--db PATH`), drives Debian's Chromium through Playwright at 1400x1000, and prints:
- Evaluate: seconds from opening a run whose test predictions are stored to its first
  chart drawn (the confusion heatmap), on first visits, each in a fresh browser profile
  (nothing cached: the browser also fetches Streamlit's code for the page's widgets and
  charts, over 1 MB of JavaScript), and on later visits, each in a new tab of a browser that
  has opened the dashboard before (its HTTP cache warm, as a person's is); the server is
  warm for both (it has served Home and Runs; the first fresh visit fills its page caches);
- Predict: seconds from an upload to the first result drawn (the probability bars),
  the page already open in such a tab (its models loaded);
- Stop: seconds from the click to "Stopping" on screen, to the store's run ending, and
  to "stopped" on screen, once while the run trains and once while it validates.
What is on screen is timed by the page's own clock (PAGE_CLOCK), not by Playwright's waits.

The prepared store holds a fine run (seed-part2, 3 epochs on 10,000 images, so its
parameter counts, test predictions and heatmap are real-sized) and a small coarse run; the
Stop runs are queued on the server while the benchmark watches. Real CIFAR-100 is used
when found (`--data`, `LSC_DATA`, or ../shared/data/cifar100.npz); else tiny synthetic
data in the same format (100 test images, so Evaluate is then unrealistically light).

    python bench/browser_timing.py                 # prepares its own store
    python bench/browser_timing.py --db runs.sqlite --run 12   # an existing store and run

The thresholds of issue 13 (Evaluate <= 2 s, Predict <= 1 s, Stop on screen <= 2 s) are
printed beside the figures; timings on a loaded machine are noisy.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lsc_core.config import LayerSpec, RunConfig, preset  # noqa: E402
from lsc_core.store import RUNNING, Store  # noqa: E402

CHROMIUM = os.environ.get("LSC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
REAL_DATA = REPO.parent / "shared" / "data" / "cifar100.npz"
DRAWN_CHART = "[data-testid='stVegaLiteChart'] :is(canvas, svg.marks)"  # a chart Vega has drawn
TARGETS_S = {"evaluate": 2.0, "predict": 1.0, "stop": 2.0}
# Times on screen are read from the page's own clock (performance.now(), from the navigation's
# start), not from Playwright's waits: those poll with a back-off (0, 20, 100, 100, 500 ms, ...),
# so a chart drawn 0.5 s after an upload was reported at 0.9 s. The page notes when each thing
# first appears (a MutationObserver), and resets its notes at the person's action: a file chosen
# (an upload) or the first click. `window.__lscWatch` names texts to note ({name: text}).
PAGE_CLOCK = """
(() => {
  const note = (name, found) => {
    const marks = window.__lscMarks;
    if (marks[name] === undefined && found) marks[name] = performance.now();
  };
  window.__lscMarks = {};
  new MutationObserver(() => {
    note("title", document.querySelector("h1"));
    note("chart", document.querySelector("%s"));
    const main = document.querySelector("[data-testid='stMain']");
    for (const [name, text] of Object.entries(window.__lscWatch || {})) {
      note(name, main !== null && main.textContent.includes(text));
    }
  }).observe(document, {subtree: true, childList: true, characterData: true});
  document.addEventListener("change", (event) => {
    if (event.target.type === "file") window.__lscMarks = {action: performance.now()};
  }, true);
  document.addEventListener("click", () => note("action", true), true);
})();
""" % DRAWN_CHART
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4), LayerSpec.make("flatten"))


def find_data(given: str | None, home: Path) -> str:
    """Real CIFAR-100 when there is some, else tiny synthetic arrays written into `home`."""
    for candidate in (given, os.environ.get("LSC_DATA"), REAL_DATA):
        if candidate and Path(candidate).exists():
            return str(candidate)
    sys.path.insert(0, str(REPO / "tests"))
    from cifar_files import synthetic_arrays, write_npz

    print("no real CIFAR-100 found: tiny synthetic data (Evaluate's figures are then too light)")
    return str(write_npz(home / "tiny.npz", synthetic_arrays(n_train_per_class=4)))


def prepare_store(db: Path, data_path: str) -> int:
    """Train the runs the benchmark opens; returns the fine run's id (its predictions stored)."""
    from lsc_core.data import load_cifar100
    from lsc_core.evaluate import store_predictions
    from lsc_core.train import train_run

    data = load_cifar100(data_path)
    store = Store(db)
    # The fine run is trained enough (3 epochs on 10,000 images, about 40 s) that its heatmap has as
    # many cells as a trained run's (about 2,500 of 10,000 with images; 65% accuracy gives 2,800):
    # 1 epoch on 500 images put nearly every image in one column, a few hundred cells to draw.
    configs = [RunConfig(layers=SMALL, label_mode="coarse", epochs=1, limit=500, name="bench-coarse"),
               preset("seed-part2", label_mode="fine", epochs=3, limit=10_000, name="bench-fine")]
    for config in configs:
        run = train_run(store, store.create_run(config, status=RUNNING), load_data=lambda: data,
                        after_training=store_predictions)
        if run.status != "completed":
            raise SystemExit(f"preparing the store: {run.name} {run.status}: {run.error}")
    return run.id


def start_server(db: Path, data_path: str, home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LSC_DB": str(db), "LSC_DATA": data_path, "LSC_ARTIFACTS": str(db.parent / "artifacts")}
    log = open(home / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"streamlit did not start; see {home / 'streamlit.log'}")


def wait_idle(page, timeout_ms: float = 120_000, quiet_ms: int = 1500) -> None:
    """Until Streamlit has finished running the page's script: its "running" widget absent for
    `quiet_ms` in a row (it is absent too before a script starts, and between reruns)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    deadline = time.time() + timeout_ms / 1000
    quiet_since = None
    while time.time() < deadline:
        if page.locator("[data-testid='stStatusWidget']").count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif (time.time() - quiet_since) * 1000 >= quiet_ms:
            return
        page.wait_for_timeout(100)
    raise TimeoutError("the page never finished running")


def clocked_context(browser):
    """A new browser profile (context) whose pages note when things appear (PAGE_CLOCK)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PAGE_CLOCK)
    return context


def page_marks(page) -> dict[str, float]:
    """What the page noted (PAGE_CLOCK), in seconds on its clock."""
    return {name: ms / 1000 for name, ms in page.evaluate("window.__lscMarks").items()}


def time_evaluate(context, url: str, run_id: int) -> tuple[float, float]:
    """Seconds from opening Evaluate on the run (the navigation's start), in a new tab of the
    browser `context` (a clocked_context), to its title (Streamlit's own start: the page shell,
    the script begun) and to its first chart drawn."""
    page = context.new_page()
    page.goto(f"{url}/evaluate?run={run_id}")
    page.wait_for_selector(DRAWN_CHART, timeout=120_000)
    marks = page_marks(page)
    page.close()
    return marks["title"], marks["chart"]


def time_evaluate_fresh(browser, url: str, run_id: int) -> tuple[float, float]:
    """time_evaluate in a new browser profile: nothing cached, as a person's first visit."""
    fresh = clocked_context(browser)
    try:
        return time_evaluate(fresh, url, run_id)
    finally:
        fresh.close()


def time_predict(context, url: str, image: Path) -> float:
    """Seconds from an upload (the file chosen) to the first probability chart drawn, the page
    already open in a new tab of the browser `context` (a clocked_context)."""
    page = context.new_page()
    page.goto(f"{url}/predict")
    page.get_by_text("Upload one or more images").wait_for(timeout=120_000)  # past the models' loading
    wait_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(image))
    page.wait_for_selector(DRAWN_CHART, timeout=120_000)
    marks = page_marks(page)
    page.close()
    return marks["chart"] - marks["action"]


def time_stop(browser, url: str, db: Path, phase: str) -> dict[str, float]:
    """Queue a long run on the server, open it on Runs, click Stop while it is in `phase`."""
    store = Store(db)
    config = preset("seed-part2", label_mode="coarse", epochs=50, limit=2000, name=f"bench-stop-{phase}")
    run_id = store.create_run(config)
    context = clocked_context(browser)
    page = context.new_page()
    page.goto(f"{url}/runs?run={run_id}")
    deadline = time.time() + 300
    # Past the first batches: the first one waits for TensorFlow to build the training step
    # (seconds), which no stop can cut short; a person stops a run that has been training.
    while not _in_phase(store.get_run(run_id).progress or {}, phase):
        if time.time() > deadline:
            raise SystemExit(f"run {run_id} never reached {phase}: {store.get_run(run_id).status}")
        time.sleep(0.05)
    main = page.locator("[data-testid='stMain']")  # not the header's Stop, which stops the page's script
    final = f"run {run_id} · stopped"
    page.evaluate("watched => { window.__lscWatch = watched; }", {"stopping": "Stopping", "stopped": final})
    ended = {}
    watcher = threading.Thread(target=_watch_end, args=(db, run_id, ended), daemon=True)
    started = time.perf_counter()
    main.get_by_role("button", name="Stop", exact=True).click()
    watcher.start()
    main.get_by_text(final).first.wait_for(timeout=120_000)
    watcher.join(timeout=120)
    marks = page_marks(page)
    context.close()
    # The answer to the click: "Stopping", or the final status when the run ended at once.
    answered = min(marks.get("stopping", marks["stopped"]), marks["stopped"])
    return {"stopping": answered - marks["action"], "ended": ended.get("at", float("nan")) - started,
            "stopped on screen": marks["stopped"] - marks["action"]}


def _in_phase(progress: dict, phase: str) -> bool:
    """In `phase`, and (training) past the first few batches."""
    return progress.get("phase") == phase and (phase != "training" or (progress.get("batch") or 0) >= 5)


def _watch_end(db: Path, run_id: int, ended: dict) -> None:
    """Record when the store says the run has ended (its own connection: one per thread)."""
    store = Store(db)
    while store.get_run(run_id).status == RUNNING:
        time.sleep(0.02)
    ended["at"] = time.perf_counter()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="an existing store (default: one prepared in a temporary folder)")
    parser.add_argument("--run", type=int, help="with --db: the run to open on Evaluate (predictions stored)")
    parser.add_argument("--data", help="CIFAR-100 (default: LSC_DATA, ../shared/data/cifar100.npz, else synthetic)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--repeat", type=int, default=3, help="timings to take of each Evaluate and Predict kind")
    parser.add_argument("--no-stop", action="store_true", help="skip the Stop timings (they train on the server)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright
    from PIL import Image

    home = Path(tempfile.mkdtemp(prefix="lsc-browser-bench-"))
    data_path = find_data(args.data, home)
    if args.db:
        db, run_id = Path(args.db).resolve(), args.run
        if run_id is None:
            raise SystemExit("error: --db needs --run, the run to open on Evaluate")
    else:
        db = home / "runs.sqlite"
        started = time.perf_counter()
        run_id = prepare_store(db, data_path)
        print(f"store prepared in {time.perf_counter() - started:.1f} s: {db}")
    image = home / "photo.png"
    Image.new("RGB", (640, 480), (180, 60, 40)).save(image)

    port = args.port or _free_port()
    server = start_server(db, data_path, home, port)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            used = clocked_context(browser)  # the browser of a person who has been here
            _warm_server(used, url)
            first = [time_evaluate_fresh(browser, url, run_id) for _ in range(args.repeat)]
            later = [time_evaluate(used, url, run_id) for _ in range(args.repeat)]
            report("Evaluate, first visit in a fresh profile: title", [t for t, _ in first], None)
            report("Evaluate, first visit in a fresh profile: first chart", [c for _, c in first],
                   TARGETS_S["evaluate"])
            report("Evaluate, later visits: title", [t for t, _ in later], None)
            report("Evaluate, later visits: first chart", [c for _, c in later], TARGETS_S["evaluate"])
            report("Predict, upload to result", [time_predict(used, url, image) for _ in range(args.repeat)],
                   TARGETS_S["predict"])
            if not args.no_stop:
                for phase in ("training", "validating"):
                    times = time_stop(browser, url, db, phase)
                    print(f"Stop while {phase}: 'Stopping' (or the end) on screen {times['stopping']:.2f} s, run ended "
                          f"{times['ended']:.2f} s, 'stopped' on screen {times['stopped on screen']:.2f} s "
                          f"(target {TARGETS_S['stop']:.0f} s)")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def _warm_server(context, url: str) -> None:
    """Open Home, then Runs (a table and a run's curves), in the browser `context`: the server has
    imported the app and started its worker (a warm server), and the browser has cached the
    dashboard's code, as a person's browser has after a first look around."""
    page = context.new_page()
    page.goto(url)
    wait_idle(page)
    page.goto(f"{url}/runs")
    page.wait_for_selector(DRAWN_CHART, timeout=120_000)
    wait_idle(page)
    page.close()


def report(what: str, seconds: list[float], target: float | None) -> None:
    figures = ", ".join(f"{s:.2f}" for s in seconds)
    goal = f"; target <= {target:.0f} s" if target is not None else ""
    print(f"{what}: {figures} s (median {sorted(seconds)[len(seconds) // 2]:.2f} s{goal})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
