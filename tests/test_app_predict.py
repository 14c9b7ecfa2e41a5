"""AppTest of the Predict page: the uploader with good and broken images, real tiny runs."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from images import write_broken_images, write_good_images
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.markup import plain
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "app_pages" / "predict.py")
TIMEOUT_S = 60  # the first prediction imports TensorFlow and loads the model
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".bmp": "image/bmp",
        ".gif": "image/gif", ".tiff": "image/tiff"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """runs.sqlite with one fine and one coarse run; {mode: run id}."""
    db = tmp_path_factory.mktemp("app_predict") / "runs.sqlite"
    store = Store(db)
    ids = {}
    for mode in ("fine", "coarse"):
        config = RunConfig(layers=SMALL, epochs=1, batch_size=32, learning_rate=3e-3, label_mode=mode,
                           name=f"tiny-{mode}")
        ids[mode] = store.create_run(config, status=RUNNING)
        train_run(store, ids[mode], load_data=lambda: tiny_data)
    return db, ids


@pytest.fixture
def page(trained, tiny_npz, monkeypatch):
    db, ids = trained
    monkeypatch.setenv("LSC_DB", str(db))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT_S), ids


def as_upload(path: Path):
    return path.name, path.read_bytes(), MIME.get(path.suffix, "application/octet-stream")


def test_without_uploads_the_best_run_of_each_mode_is_chosen_and_it_asks_for_images(page):
    at, ids = page
    at.run()
    assert not at.exception
    assert {ids["fine"], ids["coarse"]} == set(at.multiselect[0].value)
    assert ["Upload one or more images (PNG, JPEG, WebP, BMP, GIF, TIFF), or take a photo with the camera."] == \
        [i.value for i in at.info]


def test_uploads_of_every_kind_get_labels_and_broken_ones_one_message_each(page, tmp_path):
    at, ids = page
    good = write_good_images(tmp_path / "good")
    broken = write_broken_images(tmp_path / "broken")
    chosen = [good[n] for n in ("photo.jpg", "alpha.png", "animated.gif", "deep.tiff", "cmyk.jpg", "rotated.jpg",
                                "lossless.webp", "bitmap.bmp")]
    bad = [broken[n] for n in ("notes.png", "truncated.jpg", "empty.png", "bomb.png")]
    at.run()
    at.file_uploader[0].set_value([as_upload(p) for p in chosen[:4] + bad[:2] + chosen[4:] + bad[2:]]).run()
    assert not at.exception
    assert [plain("notes.png: not an image (Pillow cannot identify it)"),
            plain("truncated.jpg: truncated file (the image data ends early)"),
            plain("empty.png: empty file"),
            plain("bomb.png: too large (over 50 megapixels; refused as a possible decompression bomb)")] == \
        [e.value for e in at.error]
    # Each good image: its preview and 32x32 view, one bar chart per chosen run (fine, coarse), and per run
    # two heatmap pairs (top class, picked class).
    assert (2 + 2 * 2) * len(chosen) == len(at.image)
    assert 2 * len(chosen) == len(at.get("vega_lite_chart"))
    captions = [c.value for c in at.caption]
    assert sum("coarse summed from its fine probabilities" in c for c in captions) == len(chosen)
    assert sum(c.endswith(": coarse run") for c in captions) == len(chosen)


def test_only_the_coarse_run(page, tmp_path):
    at, ids = page
    good = write_good_images(tmp_path / "good")
    at.run()
    at.multiselect[0].set_value([ids["coarse"]])
    at.file_uploader[0].set_value(as_upload(good["gray.png"])).run()
    assert not at.exception
    assert ([], 1) == ([e.value for e in at.error], len(at.get("vega_lite_chart")))


def test_heatmaps_for_the_top_class_and_a_picked_one(page, tmp_path):
    at, ids = page
    good = write_good_images(tmp_path / "good")
    at.run()
    at.multiselect[0].set_value([ids["fine"]])
    at.file_uploader[0].set_value(as_upload(good["photo.jpg"])).run()
    assert not at.exception
    top = next(m.value for m in at.markdown if m.value.startswith("Where it looked for **"))
    picker = at.selectbox(key=f"predict_explain_{ids['fine']}_0")
    assert 100 == len(picker.options) and picker.value != picker.options[0]  # the runner-up, not the top class
    assert top.split("**")[1] == picker.options[0].rsplit(" (", 1)[0]
    heat_pairs = [element.captions for element in at.image][2:]
    assert [["on the image (the centred square it sees)", "on the 32x32 input"]] * 2 == heat_pairs
    at.selectbox(key=f"predict_explain_{ids['fine']}_0").set_value(42).run()
    assert not at.exception and 42 == at.selectbox(key=f"predict_explain_{ids['fine']}_0").value


def test_a_camera_photo_goes_the_way_of_an_upload(page, tmp_path):
    at, ids = page
    good = write_good_images(tmp_path / "good")
    at.run()
    assert 0 == len(at.camera_input)  # off until asked for: the browser would ask for the camera at once
    at.toggle(key="predict_camera_on").set_value(True).run()
    at.camera_input(key="predict_camera").set_value(("shot.jpg", good["photo.jpg"].read_bytes(), "image/jpeg"))
    at.run()
    assert not at.exception
    assert any(m.value.startswith(f"**{plain('shot.jpg')}**") for m in at.markdown)
    assert 2 == len(at.get("vega_lite_chart"))  # its labels under both default runs


def test_flip_averaging_gives_labels_too(page, tmp_path):
    at, ids = page
    good = write_good_images(tmp_path / "good")
    at.run()
    at.toggle(key="predict_tta").set_value(True)
    at.file_uploader[0].set_value([as_upload(good["photo.jpg"])]).run()
    assert not at.exception and [] == at.error
    assert 2 == len(at.get("vega_lite_chart"))  # one bar chart per chosen run
