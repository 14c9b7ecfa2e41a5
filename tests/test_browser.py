"""The real app in a real Chromium: build, launch, watch it train, compare.

Starts `streamlit run app.py` on a free local port against a temporary store and tiny
data, and drives Debian's Chromium through Playwright. Screenshots land in
test-artifacts/ for a person to look at. Skipped, with the reason, where there is no
Chromium or no Playwright.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsc_core import search, views
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


@contextlib.contextmanager
def dashboard(home: Path, data: Path):
    """`streamlit run app.py` on a free local port against the store home/runs.sqlite: its URL."""
    port = _free_port()
    env = {**os.environ, "LSC_DB": str(home / "runs.sqlite"), "LSC_DATA": str(data),
           "LSC_ARTIFACTS": str(home / "artifacts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(home / "streamlit.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.3)
            else:
                pytest.fail(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-2000:]}")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_npz):
    """A running dashboard on an empty store: (url, store path)."""
    home = tmp_path_factory.mktemp("server")
    with dashboard(home, tiny_npz) as url:
        yield url, home / "runs.sqlite"


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
    page.set_default_timeout(90_000)  # a server's first view imports TensorFlow: slow on a loaded machine
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
    page.get_by_text("2,165,428").filter(visible=True).first.wait_for()  # seed-part2, the default preset
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
        if runs and runs[0].status in ("completed", "failed"):
            break
        time.sleep(1)
    (run,) = Store(db).list_runs()
    assert ("completed", None) == (run.status, run.error)
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)  # the live curves
    shot(page, "run")
    main_text(page, run.name)
    no_error_text(page)
    shot(page, "run")

    page.goto(f"{url}/runs")
    wait_for_app(page)
    page.get_by_role("tab", name="Compare").click()
    wait_for_app(page)
    page.locator("[data-testid='stVegaLiteChart']:visible").first.wait_for(timeout=30_000)
    page.locator("[data-testid='stMultiSelect']:visible").filter(has_text=run.name).first.wait_for(timeout=30_000)
    no_error_text(page)
    shot(page, "compare")
    # Only the open tab runs, and the address names it: a reload opens Compare again.
    page.wait_for_url("**tab=Compare**", timeout=10_000)
    page.reload()
    wait_for_app(page)
    page.locator("[data-testid='stMultiSelect']:visible").filter(has_text=run.name).first.wait_for(timeout=30_000)
    main_text(page, "Runs to compare")
    assert 0 == page.get_by_text("Select a row to open it below").count()  # drawn even hidden, were it run


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
    assert "completed" == run.status
    good, bad = tmp_path / "photo.png", tmp_path / "notes.png"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(good)
    bad.write_text("this is not an image")

    page.goto(f"{url}/predict")
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(good), str(bad)])
    page.get_by_text("notes.png").first.wait_for(timeout=30_000)
    page.locator("[data-testid='stVegaLiteChart']:visible").first.wait_for(timeout=60_000)
    wait_for_app(page)
    text = main_text(page, "photo.png", run.name, "Where it looked for")
    assert any(name in text for name in tiny_data.fine_names)  # a predicted fine label is shown
    assert "notes.png" in page.locator("[data-testid='stAlertContentError']").first.inner_text()
    shot(page, "predict-upload")


# -- pickers and forms, on a store prepared with tiny runs ---------------------------------------
PICKS = 5  # runs (and searches) picked in turn
ROW_PX = 35  # height of a row (and of the header) of st.dataframe


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_npz, tiny_data):
    """A dashboard on a store with ten tiny evaluable runs (a real fine and a real coarse run, and
    copies of them under other names) and five stopped searches: (url, store path, run ids newest
    first, search ids newest first)."""
    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.evaluate import store_predictions
    from lsc_core.store import COMPLETED, RUNNING
    from lsc_core.train import train_run

    home = tmp_path_factory.mktemp("prepared")
    store = Store(home / "runs.sqlite")
    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("maxpool2d", pool_size=4),
                               LayerSpec.make("flatten")), epochs=1, batch_size=50)
    trained = {}
    for mode in ("fine", "coarse"):
        run_id = store.create_run(config.replace(label_mode=mode, name=f"pick-{mode}-0"), status=RUNNING)
        trained[mode] = train_run(store, run_id, load_data=lambda: tiny_data, after_training=store_predictions)
    for copy in range(1, 5):  # the same models under other names: picking must show each
        for mode, original in trained.items():
            run_id = store.create_run(config.replace(label_mode=mode, name=f"pick-{mode}-{copy}"), status=RUNNING)
            store.log_epoch(run_id, 1, {"val_accuracy": original.best_val_accuracy}, 1.0)
            store.set_model_path(run_id, original.model_path)
            stored = store.load_predictions(original.id)
            store.save_predictions(run_id, stored["probabilities"], stored["fine"], stored["coarse"], mode)
            store.finish_run(run_id, COMPLETED)
    searches = []
    for number in range(PICKS):
        spec = search.SearchSpec(search.study_space(), trials=2, epochs=1, limit=100, seed=number)
        searches.append(search.create_search(store, spec, name=f"search-pick-{number}"))
        store.set_search_status(searches[-1], search.SEARCH_STOPPED)  # nothing to resume or train
    with dashboard(home, tiny_npz) as url:
        yield url, home / "runs.sqlite", [run.id for run in store.list_runs()], searches[::-1]


def main_text(page, *waiting_for: str) -> str:
    """The page's main text, once it contains every one of `waiting_for`: the script runs a moment
    after a click, and the browser draws its elements one by one (a row of metrics can come after
    the caption below it), so a test waits for each part it reads."""
    main = page.locator("[data-testid='stMain']")
    for part in waiting_for:
        main = main.filter(has_text=part)
    main.wait_for(timeout=30_000)
    return main.inner_text()


def next_frames(page, frames: int = 2) -> None:
    """Until the browser has drawn `frames` more frames: the scroll events of a scroll are out by then."""
    page.evaluate("(n) => new Promise((done) => { const step = (k) => k ? requestAnimationFrame(() => step(k - 1)) "
                  ": done(); step(n); })", frames)


def choose(page, label: str, option: str) -> None:
    """Scroll the selectbox labelled `label` into view, open it and click `option`, as a person would.

    Scrolled first, apart from the click: Streamlit's selectbox (a react-aria combobox) closes its
    list on any scroll of the page around it, and a scroll made in the same instant as the click
    (Playwright's own, for a box below the fold) can reach it just after the list opened, on a
    loaded machine more often than not. A list closed so is opened again."""
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label).first
    wanted = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        box.scroll_into_view_if_needed()
        next_frames(page)
        box.click()
        try:
            wanted.wait_for(timeout=5_000)
            wanted.click(timeout=5_000)
            break
        except playwright_api.TimeoutError:
            page.keyboard.press("Escape")
    else:
        pytest.fail(f"the {label!r} selectbox never offered {option!r}")
    wait_for_app(page)


def test_evaluate_shows_each_run_picked_in_turn(prepared, page):
    url, db, run_ids, _ = prepared
    store = Store(db)
    page.goto(f"{url}/evaluate?run={run_ids[-1]}")  # a shared link opens that run
    wait_for_app(page)
    main_text(page, store.get_run(run_ids[-1]).name + ":")
    for run_id in run_ids[1:1 + PICKS]:
        run = store.get_run(run_id)
        choose(page, "Run", views.run_label(run))
        main_text(page, run.name + ":")
        # This run's chance level, not the last pick's still on screen: 1 in 100 or 1 in 20 classes.
        guess = page.locator("[data-testid='stMetric']").filter(has_text="Random guess")
        playwright_api.expect(guess.locator("[data-testid='stMetricValue']")).to_have_text(
            "1%" if run.label_mode == "fine" else "5%", timeout=30_000)
        page.wait_for_url(f"**?run={run_id}", timeout=10_000)
    shot(page, "pick-evaluate")
    no_error_text(page)
    page.reload()  # the address keeps the last pick
    wait_for_app(page)
    main_text(page, store.get_run(run_ids[PICKS]).name + ":")


def test_search_shows_each_search_picked_in_turn(prepared, page):
    url, db, _, search_ids = prepared
    page.goto(f"{url}/search")
    wait_for_app(page)
    options = search.search_options(search.summaries(Store(db)))
    for search_id in [*search_ids[1:], search_ids[0]]:
        choose(page, "Search", options[search_id])
        main_text(page, f"Search {search_id} · stopped")
        page.wait_for_url(f"**?search={search_id}", timeout=10_000)
    shot(page, "pick-search")
    no_error_text(page)


def test_runs_table_opens_each_row_clicked(prepared, page):
    url, db, run_ids, _ = prepared
    store = Store(db)
    page.goto(f"{url}/runs")
    wait_for_app(page)
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for()
    box = grid.bounding_box()
    for row in (3, 1, 4, 0, 2):  # rows are the runs newest first; a click in the row marker selects it
        grid.click(position={"x": 12, "y": ROW_PX * (row + 1) + ROW_PX / 2})
        wait_for_app(page)
        name = store.get_run(run_ids[row]).name
        page.get_by_role("heading", name=name).wait_for(timeout=10_000)
        page.wait_for_url(f"**?run={run_ids[row]}", timeout=10_000)
    assert box["height"] > ROW_PX * 6
    shot(page, "pick-runs")
    no_error_text(page)


def queued_work(db) -> tuple[int, int, int]:
    """(runs, searches, study suites) in the store."""
    store = Store(db)
    return len(store.list_runs()), len(store.list_searches()), len(store.list_suites())


def press_enter_in_each_number_field(page, values: dict[str, str] | None = None) -> int:
    """Type into every number field on view (`values` by label, else its own value again; those
    in closed expanders cannot be typed in) and press Enter, as a person finishing a field
    would; returns how many there were."""
    fields = page.locator("[data-testid='stNumberInputField']").filter(visible=True)
    count = fields.count()
    for index in range(count):
        field = fields.nth(index)
        label = field.get_attribute("aria-label") or ""
        field.fill((values or {}).get(label, field.input_value()))
        field.press("Enter")
        wait_for_app(page)
    return count


@pytest.mark.parametrize("path, values", [
    ("search", {"Trials": "3", "Epochs per trial": "2", "Training images (0 = all 50,000)": "500"}),
    ("study", {"Epochs scale": "0.5", "Training images per run (0 = all 50,000)": "1000"}),
    ("build", {"Epochs": "2", "Training images (empty: all)": "200"}),
])
def test_enter_in_a_number_field_queues_nothing(prepared, page, path, values):
    url, db, _, _ = prepared
    before = queued_work(db)
    page.goto(f"{url}/{path}")
    wait_for_app(page)
    page.locator("[data-testid='stNumberInputField']").first.wait_for(timeout=60_000)  # a first view may import TF
    for label in values:  # the form draws its fields in turn: count them once all are there
        page.locator(f"[data-testid='stNumberInputField'][aria-label='{label}']").wait_for(timeout=30_000)
    fields = press_enter_in_each_number_field(page, values)
    assert fields >= len(values)
    page.wait_for_timeout(1_000)  # a submit would have queued by now
    assert before == queued_work(db)
    assert "queued" not in main_text(page)
    no_error_text(page)
    shot(page, f"enter-{path}")


def test_a_reload_of_build_keeps_the_form(prepared, page):
    url, _, _, _ = prepared
    page.goto(f"{url}/build")
    wait_for_app(page)
    set_number(page, "Epochs", "3")
    set_number(page, "Training images (empty: all)", "250")
    page.get_by_text("Add a layer").first.wait_for()
    page.reload()
    wait_for_app(page)
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.wait_for(timeout=30_000)
    assert ("3", "250") == (epochs.input_value(),
                            page.get_by_label("Training images (empty: all)", exact=True).input_value())
    shot(page, "build-reloaded")
    page.get_by_role("button", name="Launch").scroll_into_view_if_needed()
    main_text(page, "Launch queues 1 run x 3 epochs x 250 images = 750 training images")
    page.screenshot(path=str(ARTIFACTS / "build-launch.png"))  # the launch summary in view
    page.get_by_role("button", name="Reset", exact=True).click()
    wait_for_app(page)
    page.wait_for_function("() => document.querySelector('input[aria-label=\"Epochs\"]').value === '10'",
                           timeout=10_000)


def test_a_launch_over_an_hour_or_repeating_a_queued_one_asks_first(tmp_path, tiny_npz, page):
    """Launch's estimate comes from this device's measured runs: with a similar run measured at
    10 minutes per full epoch, the default form (10 epochs of 50,000 images) asks before it
    queues; once queued, the same form asks again, naming the run it repeats."""
    from lsc_core.config import analyze, preset
    from lsc_core.store import ACTIVE_STATES, COMPLETED, RUNNING

    store = Store(tmp_path / "runs.sqlite")
    measured = store.create_run(preset("seed-part2", epochs=1, name="slow"), status=RUNNING)
    store.start_run(measured, params=analyze(preset("seed-part2")).total_params, versions={}, device="")
    store.log_epoch(measured, 1, {"val_accuracy": 0.1}, 600.0)
    store.finish_run(measured, COMPLETED)
    with dashboard(tmp_path, tiny_npz) as url:
        page.goto(f"{url}/build")
        wait_for_app(page)
        main = page.locator("[data-testid='stMain']")
        launch = main.get_by_role("button", name="Launch")
        # The page fixture's 90 s: this is a fresh server's first view (a full suite's load made 30 s too few).
        main.get_by_text("Confirm first: it should take about 1h 40m.").wait_for()
        main_text(page, f"about 1h 40m (measured: run {measured} on this device)")
        playwright_api.expect(launch).to_be_disabled()
        main.get_by_text("Queue it anyway").click()
        playwright_api.expect(launch).to_be_enabled(timeout=30_000)
        assert 1 == len(store.list_runs())
        launch.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "launch-confirmed.png"))
        launch.click()
        page.wait_for_url("**/runs?run=*", timeout=30_000)
        queued = store.list_runs()[0]
        assert (queued.id != measured, queued.status in ACTIVE_STATES, queued.config.epochs) == (True, True, 10)

        page.goto(f"{url}/build")  # the form as launched, and that run still queued or training
        wait_for_app(page)
        text = main_text(page, "with exactly this config is still")
        assert any(f"run #{queued.id} {queued.name} with exactly this config is still {status}" in text
                   for status in ACTIVE_STATES), text
        playwright_api.expect(launch).to_be_disabled()
        launch.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "launch-repeat.png"))  # the question in view
        store.request_stop(queued.id)
    assert [measured, queued.id] == sorted(run.id for run in store.list_runs())  # nothing else was queued


# -- charts sized to their content, Stop answered, no Deploy button, suites stopped (issue 13) --
DRAWN_CHART = "[data-testid='stVegaLiteChart'] :is(canvas, svg.marks)"


def test_a_stopped_run_with_a_saved_model_is_used_like_a_completed_one(tmp_path, tiny_npz, tiny_data, page):
    """Stopped after its first epoch, a run is Home's best, evaluated and predicted with, and each
    page says it stopped before its last epoch."""
    import threading

    from stopping import StopsAfterEpoch

    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.evaluate import store_predictions
    from lsc_core.store import RUNNING, STOPPED
    from lsc_core.train import train_run

    stop = threading.Event()
    store = StopsAfterEpoch(tmp_path / "runs.sqlite", 1, stop)
    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("maxpool2d", pool_size=4),
                               LayerSpec.make("flatten")), label_mode="coarse", epochs=3, batch_size=50, name="cut-short")
    run = train_run(store, store.create_run(config, status=RUNNING), load_data=lambda: tiny_data, stop_event=stop,
                    after_training=store_predictions)
    assert (STOPPED, 1, 1) == (run.status, run.best_epoch, store.get_run(run.id).model_epoch)
    with dashboard(tmp_path, tiny_npz) as url:
        page.goto(url)
        page.get_by_text("Best so far").wait_for()  # the page fixture's 90 s: a fresh server's first view
        main_text(page, "cut-short, epoch 1 (stopped before its last epoch)")
        page.goto(f"{url}/evaluate?run={run.id}")
        main_text(page, "Top-1 test accuracy", "This run is stopped", "its best epoch so far is evaluated")
        page.locator(DRAWN_CHART).first.wait_for(timeout=30_000)  # its confusion, from its saved model
        page.goto(f"{url}/predict")
        page.get_by_text("Upload one or more images").wait_for(timeout=60_000)
        main_text(page, "best model: epoch 1 of 3", f"#{run.id} cut-short (coarse, stopped")  # its model named
        shot(page, "stopped-run-predict")
        no_error_text(page)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_heatmaps_keep_their_size_and_fit_the_column_at_100_and_20_classes(prepared, browser, theme):
    """The 20-class heatmap was squeezed into 138x258 px (a hidden tab): both now have their
    cells' full size, inside the main column, in either theme."""
    from lsc_core.charts import heatmap_geometry

    url, db, run_ids, _ = prepared
    fine = next(i for i in run_ids if Store(db).get_run(i).label_mode == "fine")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=theme)
    page = context.new_page()
    try:
        page.goto(f"{url}/evaluate?run={fine}")
        wait_for_app(page)
        for classes, level in ((100, "Fine (100 classes)"), (20, "Coarse, derived from fine (20 superclasses)")):
            page.get_by_text(level, exact=True).click()  # the segmented control's option
            wait_for_app(page)
            geometry = heatmap_geometry(classes)
            drawn = page.locator(DRAWN_CHART).first
            drawn.wait_for(timeout=30_000)
            page.wait_for_function(
                f"() => document.querySelector(\"{DRAWN_CHART}\").getBoundingClientRect().height >= "
                f"{geometry.row_px * classes}", timeout=30_000)
            box = drawn.bounding_box()
            column = page.locator("[data-testid='stSelectbox']").first.bounding_box()  # the main column's width
            assert box["width"] >= geometry.column_px * classes and box["height"] >= geometry.row_px * classes, box
            assert box["x"] + box["width"] <= column["x"] + column["width"], (box, column)  # no overflow, no shrinking
            shot(page, f"heatmap-{classes}-{theme}")
        no_error_text(page)
    finally:
        context.close()


def test_stop_is_answered_on_screen_and_the_run_ends(server, page, tiny_data):
    """Stop shows "Stopping…" (or already the end) at once, then the final status; the bounds are
    generous (a test, not a benchmark: bench/browser_timing.py measures)."""
    from lsc_core.config import LayerSpec, RunConfig

    url, db = server
    store = Store(db)
    config = RunConfig(layers=(LayerSpec.make("conv2d", filters=4), LayerSpec.make("flatten")), epochs=200,
                       batch_size=1, name="to-stop")  # thousands of steps: it trains until stopped
    run_id = store.create_run(config)
    page.goto(f"{url}/runs?run={run_id}")  # a first page starts the server's worker, which trains it
    wait_for_app(page)
    deadline = time.time() + 180
    while (store.get_run(run_id).progress or {}).get("phase") != "training" and time.time() < deadline:
        time.sleep(0.2)
    assert "running" == store.get_run(run_id).status
    final = page.get_by_text(f"run {run_id} · stopped").first
    main = page.locator("[data-testid='stMain']")  # not the header's Stop, which stops the page's script
    main.get_by_role("button", name="Stop", exact=True).click()
    main.get_by_role("button", name="Stopping…").or_(final).first.wait_for(timeout=10_000)
    final.wait_for(timeout=20_000)
    assert "stopped" == store.get_run(run_id).status
    no_error_text(page)


def test_no_deploy_button_and_the_sidebar_names_the_device(server, page):
    url, _ = server
    page.goto(url)
    wait_for_app(page)
    assert 0 == page.locator("[data-testid='stAppDeployButton']").count()
    assert 0 == page.get_by_text("Deploy", exact=True).count()
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.filter(has_text="Device: CPU").or_(sidebar.filter(has_text="Device: GPU")).first.wait_for(timeout=60_000)
    assert "detecting" not in sidebar.inner_text()


def test_a_suite_is_stopped_and_removed(server, page):
    from lsc_core import study

    url, db = server
    store = Store(db)
    suite_id, _ = study.queue_suite(store, epochs_scale=0.01, limit=64)
    page.goto(f"{url}/study")
    wait_for_app(page)
    page.get_by_role("button", name="Stop the suite").click()
    main_text(page, f"Suite {suite_id} stopped")
    page.get_by_role("button", name="Remove the suite").click()
    page.get_by_role("button", name=f"Remove suite {suite_id}").click()
    main_text(page, f"Suite {suite_id} removed")
    assert study.get_suite(store, suite_id) is None
    no_error_text(page)


def column_right(page) -> float:
    """The right edge (px) of the main column's content, inside its padding."""
    return page.evaluate("""() => { const main = document.querySelector("[data-testid='stMainBlockContainer']");
        return main.getBoundingClientRect().right - parseFloat(getComputedStyle(main).paddingRight); }""")


def drawn_boxes(page, count: int) -> list[dict]:
    """The bounding boxes of the first `count` charts Vega has drawn on the page, top to bottom."""
    page.wait_for_function(f"() => document.querySelectorAll(\"{DRAWN_CHART}\").length >= {count}", timeout=60_000)
    page.wait_for_timeout(1_000)  # Vega sizes a chart a moment after drawing it
    return [page.locator(DRAWN_CHART).nth(index).bounding_box() for index in range(count)]


def test_learning_rate_strips_and_curves_keep_their_size_inside_the_column(prepared, page):
    """The learning-rate strips were squeezed to 40 px of line in a 160 px box, and a fine run's
    three curve panels ran 360 px past the main column at 1400 px: each keeps its plotting size
    (axes and titles added around it), inside the column."""
    from lsc_core.charts import common, recipe

    url, db, run_ids, _ = prepared
    fine = min(i for i in run_ids if Store(db).get_run(i).label_mode == "fine")  # trained: rates, superclass errors
    page.goto(f"{url}/runs?run={fine}")
    wait_for_app(page)
    curves, strip = drawn_boxes(page, 2)
    right = column_right(page)
    # Loss and accuracy side by side, the within-superclass panel below them.
    assert curves["width"] >= common.PANELS_PER_ROW * common.PANEL_WIDTH, curves
    assert curves["height"] >= 2 * common.PANEL_HEIGHT, curves
    assert strip["width"] >= recipe.LR_WIDTH and strip["height"] >= recipe.LR_HEIGHT + 40, strip  # + axis, title
    for box in (curves, strip):
        assert box["x"] + box["width"] <= right, (box, right)
    shot(page, "runs-curves-and-rate")

    page.goto(f"{url}/build")
    wait_for_app(page)
    (schedule,) = drawn_boxes(page, 1)
    assert schedule["width"] >= recipe.LR_WIDTH and schedule["height"] >= recipe.LR_HEIGHT + 40, schedule
    assert schedule["x"] + schedule["width"] <= column_right(page), schedule
    page.locator(DRAWN_CHART).first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "build-schedule.png"))
    no_error_text(page)
