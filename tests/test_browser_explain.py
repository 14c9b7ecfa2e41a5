"""Grad-CAM, the camera and run-against-run analysis in a real Chromium.

A store with two coarse runs trained on quadrant data (tests/quadrants.py: only the
top-right quadrant decides the label), their test predictions stored, served by the real
app. Predict: an uploaded photo shows heatmaps for the top class and a picked class, and
the camera widget is there (Chromium's fake camera takes a photo). Evaluate: the galleries
show what the network looked at; two runs give McNemar's p-value, an ensemble and a
reliability diagram. Screenshots in test-artifacts/.
"""
import numpy as np
import pytest
from PIL import Image

from cifar_files import write_npz
from quadrants import COLOURS, LABEL_QUADRANT, quadrant_arrays, quadrant_images
from test_browser import CHROMIUM, CHROMIUM_ARGS, choose, dashboard, main_text, no_error_text, playwright_api, shot, \
    wait_for_app

FAKE_CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
MISLEADING = 6  # test images painted in another class's colour, so that the galleries have mistakes to show


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, run ids): a dashboard on a store with two quadrant runs (seeds 0 and 1)."""
    import keras

    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.data import load_cifar100
    from lsc_core.evaluate import store_predictions
    from lsc_core.model import build_model, compile_model
    from lsc_core.store import COMPLETED, RUNNING, Store
    from lsc_core.train import save_atomically

    home = tmp_path_factory.mktemp("explain_browser")
    arrays = quadrant_arrays()
    wrong = (arrays["y_test_coarse"][:MISLEADING] + 1) % len(COLOURS)  # painted another class's colour
    arrays["x_test"][:MISLEADING, LABEL_QUADRANT[0], LABEL_QUADRANT[1]] = COLOURS[wrong][:, None, None, :]
    data = load_cifar100(write_npz(home / "quadrants.npz", arrays))
    store = Store(home / "runs.sqlite")
    layers = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=2),
              LayerSpec.make("conv2d", filters=8), LayerSpec.make("flatten"))
    ids = []
    for seed in (0, 1):
        config = RunConfig(layers=layers, label_mode="coarse", epochs=8, learning_rate=3e-3, seed=seed,
                           name=f"quadrant-{seed}")
        run_id = store.create_run(config, status=RUNNING)
        keras.utils.set_random_seed(seed)
        model = build_model(config)
        compile_model(model, config)
        model.fit(data.x_train.astype(np.float32), data.y_train_coarse, epochs=8, batch_size=32, verbose=0)
        save_atomically(model, store.artifacts / str(run_id) / "best.keras")
        store.set_model_path(run_id, store.artifacts / str(run_id) / "best.keras")
        store.log_epoch(run_id, 1, {"val_accuracy": 0.9}, 1.0)
        store_predictions(store, run_id, model, data)
        store.finish_run(run_id, COMPLETED)
        ids.append(run_id)
    with dashboard(home, home / "quadrants.npz") as url:
        yield url, ids


@pytest.fixture
def page():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA)
        context = chromium.new_context(viewport={"width": 1400, "height": 2400})  # tall: heatmaps in view
        context.grant_permissions(["camera"])
        yield context.new_page()
        chromium.close()


def pick_option_starting(page, label: str, start: str) -> str:
    """Open the selectbox labelled `label`, type `start` (its list is long and scrolls), click the first
    option it leaves; that option's text."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.keyboard.type(start)
    option = page.get_by_role("option").filter(has_text=start).first
    text = option.inner_text()
    option.click()
    wait_for_app(page)
    return text


def metric(page, label: str) -> float:
    """A percentage metric's value as a fraction."""
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return float(box.locator("[data-testid='stMetricValue']").inner_text().strip().rstrip("%")) / 100


def test_predict_shows_heatmaps_for_the_top_and_a_picked_class_and_takes_a_camera_photo(served, page, tmp_path):
    url, _ = served
    images, _, _ = quadrant_images(1, np.random.default_rng(3))
    images[0, LABEL_QUADRANT[0], LABEL_QUADRANT[1]] = COLOURS[2]  # the colour of coarse class 2, flowers
    photo = tmp_path / "photo.jpg"
    Image.fromarray(images[0]).resize((320, 320), Image.Resampling.NEAREST).save(photo, quality=95)
    page.goto(f"{url}/predict")
    # The first page of a fresh server waits for its job manager (and the shared machine): give it time.
    page.locator("[data-testid='stFileUploaderDropzoneInput']").wait_for(state="attached", timeout=120_000)
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(photo)])
    main_text(page, "Where it looked for flowers (top class")
    wait_for_app(page)
    no_error_text(page)
    # The top class's heatmap is drawn first, the picked class's a moment later: wait for both.
    page.get_by_text("on the image (the centred square it sees)").nth(1).wait_for(timeout=60_000)
    assert 2 == page.get_by_text("on the image (the centred square it sees)").count()  # top and picked class
    shot(page, "explain-predict-top-and-runner-up")
    picked = pick_option_starting(page, "Where it looks for", "fish")
    assert picked.startswith("fish (")
    no_error_text(page)
    shot(page, "explain-predict-picked-fish")

    page.get_by_text("Take a photo with the camera").click()
    camera = page.locator("[data-testid='stCameraInput']")
    camera.wait_for(timeout=30_000)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Chromium's fake camera (a test pattern) needs a moment to stream: a click before its video
    # plays takes no photo. Wait for it, and click again if no photo came.
    camera.locator("video").wait_for(timeout=30_000)
    page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stCameraInput'] video\")]"
                           ".some(video => video.readyState >= 2)", timeout=30_000)
    for _ in range(3):
        camera.get_by_role("button", name="Take Photo").click()
        try:
            camera.get_by_role("button", name="Clear photo").wait_for(timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    page.get_by_text("on the image (the centred square it sees)").nth(3).wait_for(timeout=60_000)
    wait_for_app(page)
    no_error_text(page)
    page.get_by_text("Where it looked for").nth(1).wait_for(timeout=30_000)  # the upload and the photo
    assert 2 == page.get_by_text("Where it looked for").count()
    shot(page, "explain-predict-camera")


def test_evaluate_shows_galleries_with_heatmaps_mcnemar_an_ensemble_and_calibration(served, page):
    url, ids = served
    page.goto(f"{url}/evaluate?run={ids[0]}")
    page.get_by_role("tab", name="Against other runs").click()  # each section runs when its tab opens
    page.get_by_text("McNemar p = ").first.wait_for(timeout=120_000)
    # The section draws top to bottom: wait for its last part before reading it.
    page.get_by_text("is a run as often right as it is confident?").first.wait_for(timeout=60_000)
    wait_for_app(page)
    text = main_text(page, "McNemar p = ")
    assert "Calibration" in text and "section=Against" in page.url
    assert 0 <= float(page.locator("[data-testid='stMetric']").filter(has_text="McNemar p-value").first
                      .locator("[data-testid='stMetricValue']").inner_text()) <= 1
    ensemble, weakest = metric(page, "Ensemble top-1"), metric(page, "Weakest run alone")
    print(f"ensemble top-1 {ensemble:.3f}, weakest run alone {weakest:.3f}, best {metric(page, 'Best run alone'):.3f}")
    assert ensemble >= weakest
    page.get_by_role("tab", name="Mistakes").click()
    page.get_by_text("Show what it looked at").click()
    main_text(page, "looked at for")
    wait_for_app(page)
    no_error_text(page)
    assert page.get_by_text("(predicted)").count() >= 1 and page.get_by_text("(true)").count() >= 1
    page.get_by_text("No misclassified test images here.").wait_for(timeout=60_000)  # the last gallery is drawn
    wait_for_app(page)
    shot(page, "explain-evaluate")
