"""The real app in a real Chromium: build, launch, watch it train, compare.

Starts `streamlit run app.py` on a free local port against a temporary store and tiny
data, and drives Debian's Chromium through Playwright. Screenshots land in
test-artifacts/ for a person to look at. Skipped, with the reason, where there is no
Chromium or no Playwright.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsc_core.store import Store

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("LSC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_npz):
    """A running dashboard: (url, store path)."""
    home = tmp_path_factory.mktemp("server")
    db = home / "runs.sqlite"
    port = _free_port()
    env = {**os.environ, "LSC_DB": str(db), "LSC_DATA": str(tiny_npz), "LSC_ARTIFACTS": str(home / "artifacts"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = open(home / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-2000:]}")
    yield url, db
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def wait_for_app(page, timeout: float = 60_000) -> None:
    """Until Streamlit has finished running the page's script."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout)
    page.wait_for_timeout(500)


def no_error_text(page) -> None:
    errors = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    assert 0 == errors.count(), errors.first.inner_text() if errors.count() else ""


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def set_number(page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")
    wait_for_app(page)


def test_build_launch_watch_and_compare(server, page):
    url, db = server
    page.goto(f"{url}/build")
    wait_for_app(page)
    page.get_by_text("2,165,428").first.wait_for(timeout=30_000)  # seed-part2, the default preset
    set_number(page, "Epochs", "2")
    set_number(page, "Training images (empty: all)", "200")
    shot(page, "build")
    no_error_text(page)
    page.get_by_role("button", name="Launch").click()

    # The Runs page opens on the new run, and its curves appear while it trains.
    page.wait_for_url("**/runs**", timeout=30_000)
    deadline = time.time() + 180
    while time.time() < deadline:
        runs = Store(db).list_runs()
        if runs and runs[0]["status"] in ("completed", "failed"):
            break
        time.sleep(1)
    (run,) = Store(db).list_runs()
    assert ("completed", None) == (run["status"], run["error"])
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)  # the live curves
    shot(page, "run")
    assert run["name"] in page.locator("[data-testid='stMain']").inner_text()
    no_error_text(page)
    shot(page, "run")

    page.goto(f"{url}/runs")
    wait_for_app(page)
    page.get_by_role("tab", name="Compare").click()
    wait_for_app(page)
    page.locator("[data-testid='stVegaLiteChart']:visible").first.wait_for(timeout=30_000)
    assert run["name"] in page.locator("[data-testid='stMultiSelect']:visible").first.inner_text()
    no_error_text(page)
    shot(page, "compare")


@pytest.mark.parametrize("path", ["", "data", "evaluate", "predict", "search", "study"])
def test_every_page_renders_without_error(server, page, path):
    url, _ = server
    page.goto(f"{url}/{path}")
    wait_for_app(page)
    no_error_text(page)
    shot(page, f"page-{path or 'home'}")


def test_upload_images_and_see_their_labels(server, page, tmp_path, tiny_data):
    """A run trained into the server's store; the Predict page labels a good image and names a bad one."""
    from PIL import Image

    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.store import RUNNING
    from lsc_core.train import train_run

    url, db = server
    store = Store(db)
    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("maxpool2d", pool_size=4),
                               LayerSpec.make("flatten")), label_mode="fine", epochs=1, name="for-predict")
    run = train_run(store, store.create_run(config, status=RUNNING), load_data=lambda: tiny_data)
    assert "completed" == run["status"]
    good, bad = tmp_path / "photo.png", tmp_path / "notes.png"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(good)
    bad.write_text("this is not an image")

    page.goto(f"{url}/predict")
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(good), str(bad)])
    page.get_by_text("notes.png").first.wait_for(timeout=30_000)
    page.locator("[data-testid='stVegaLiteChart']:visible").first.wait_for(timeout=60_000)
    wait_for_app(page)
    text = page.locator("[data-testid='stMain']").inner_text()
    assert "photo.png" in text and run["name"] in text
    assert any(name in text for name in tiny_data.fine_names)  # a predicted fine label is shown
    assert "notes.png" in page.locator("[data-testid='stAlertContentError']").first.inner_text()
    shot(page, "predict-upload")
