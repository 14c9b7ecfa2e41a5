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
    assert ["Upload one or more images (PNG, JPEG, WebP, BMP, GIF, TIFF)."] == [i.value for i in at.info]


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
    # Each good image: its preview and 32x32 view, and one bar chart per chosen run (fine, coarse).
    assert 2 * len(chosen) == len(at.image)
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
