"""Uploaded images -> the 32x32 network input -> labels; the predict command with good and broken files."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from images import BLUE, RED, write_broken_images, write_good_images
from lsc_core import charts, predict as pr
from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.data import COARSE_LABELS, FINE_LABELS, FINE_TO_COARSE
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

REPO = Path(__file__).resolve().parent.parent
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
WHITE = (255, 255, 255)
# Left and right samples of the 32x32 input for each kind: the red|blue picture survives decoding.
EXPECTED_SIDES = {
    "alpha.png": (RED, WHITE),  # transparent right half composited on white
    "palette_transparent.png": (RED, WHITE),
    "gray.png": ((87,) * 3, (52,) * 3),  # ITU-R 601 luma of red and blue
    "deep.png": ((4,) * 3, (233,) * 3),  # 16-bit 1000 and 60000 scaled by 255/65535, not clipped
    "deep.tiff": ((4,) * 3, (233,) * 3),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_good_images(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return write_broken_images(tmp_path_factory.mktemp("broken"))


def test_every_kind_of_image_becomes_a_32x32_rgb_input(good):
    for name, path in good.items():
        upload = pr.prepare_upload(name, path.read_bytes())
        assert (name, None) == (upload.name, upload.error)
        pixels = upload.image.pixels
        assert ((32, 32, 3), np.uint8) == (pixels.shape, pixels.dtype)
        left, right = EXPECTED_SIDES.get(name, (RED, BLUE))
        # JPEG and LANCZOS ringing move a few levels; halves stay clearly apart.
        assert np.abs(pixels[16, 3].astype(int) - left).max() <= 25, (name, pixels[16, 3])
        assert np.abs(pixels[16, 28].astype(int) - right).max() <= 25, (name, pixels[16, 28])
        assert max(upload.image.preview.size) <= pr.DISPLAY_SIZE and upload.image.preview.mode == "RGB"


def test_what_is_recorded_about_an_upload(good):
    gif = pr.prepare_upload("animated.gif", good["animated.gif"].read_bytes()).image
    assert ("GIF 64x48 P, 2 frames (first used)", (64, 48)) == (gif.describe(), gif.preview.size)
    large = pr.prepare_upload("large.png", good["large.png"].read_bytes()).image
    assert ("PNG 3000x2000 RGB", (384, 256)) == (large.describe(), large.preview.size)


def test_center_crop_keeps_the_middle_square():
    from PIL import Image

    # 96x32: left third green, middle blue, right third red; the crop keeps only blue.
    pixels = np.zeros((32, 96, 3), dtype=np.uint8)
    pixels[:, :32], pixels[:, 32:64], pixels[:, 64:] = (0, 255, 0), (0, 0, 255), (255, 0, 0)
    assert (pr.to_network_input(Image.fromarray(pixels)) == (0, 0, 255)).all()


def test_broken_files_each_get_one_clear_reason(broken):
    reasons = {name: pr.prepare_upload(name, path.read_bytes()).error for name, path in broken.items()}
    assert {
        "empty.png": "empty.png: empty file",
        "truncated.png": "truncated.png: truncated file (the image data ends early)",
        "truncated.jpg": "truncated.jpg: truncated file (the image data ends early)",
        "notes.png": "notes.png: not an image (Pillow cannot identify it)",
        "bomb.png": "bomb.png: too large (over 50 megapixels; refused as a possible decompression bomb)",
        "huge.png": "huge.png: too large (9000x8000 = 72 megapixels; the limit is 50)",
    } == reasons


def test_a_missing_file_is_an_upload_error(tmp_path):
    assert [f"{tmp_path}/gone.png: cannot read the file (No such file or directory)"] == \
        [u.error for u in pr.read_files([tmp_path / "gone.png"])]


def test_frames_and_lines_of_a_prediction():
    prediction = pr.Prediction(fine=(("tiger", 0.5), ("lion", 0.25)), coarse=(("large_carnivores", 0.8),),
                               coarse_derived=True)
    assert [("fine", 1, "tiger", 0.5), ("fine", 2, "lion", 0.25), ("coarse", 1, "large_carnivores", 0.8)] == \
        list(pr.prediction_frame(prediction).itertuples(index=False, name=None))
    assert ["  fine    tiger 50.0%  lion 25.0%", "  coarse  large_carnivores 80.0% (summed from fine)"] == \
        pr.format_prediction(prediction)
    spec = charts.probability_bars(pr.prediction_frame(prediction)).to_dict()
    assert ["fine", "coarse"] == [panel["title"]["text"] for panel in spec["vconcat"]]
    bars, printed = spec["vconcat"][0]["layer"]
    assert ("label", "probability") == (bars["encoding"]["y"]["field"], bars["encoding"]["x"]["field"])
    # Each bar carries its probability as text, as a whole percentage with one decimal.
    assert ("text", "probability", ".1%") == (printed["mark"]["type"], printed["encoding"]["text"]["field"],
                                              printed["encoding"]["text"]["format"])
    # In the bar's colour (the theme's palette): readable in light and dark.
    assert bars["encoding"]["color"] == printed["encoding"]["color"]


# -- with real tiny models ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data):
    """A store holding a trained fine run and a trained coarse run; {mode: run id}."""
    store = Store(tmp_path_factory.mktemp("predict") / "runs.sqlite")
    ids = {}
    for mode in ("fine", "coarse"):
        config = RunConfig(layers=SMALL, epochs=1, batch_size=32, learning_rate=3e-3, label_mode=mode, name=mode)
        ids[mode] = store.create_run(config, status=RUNNING)
        train_run(store, ids[mode], load_data=lambda: tiny_data)
    return store, ids


def test_a_fine_run_ranks_fine_labels_and_sums_them_into_coarse(runs, good):
    store, ids = runs
    run, model = pr.load_run_model(store, ids["fine"])
    uploads = pr.read_files([good["photo.jpg"], good["alpha.png"]])
    predictions = pr.classify(model, "fine", uploads, top=5)
    probs = np.asarray(model.predict_on_batch(np.stack([u.image.pixels for u in uploads]).astype("float32")))
    for prediction, p in zip(predictions, probs):
        top = np.argsort(-p)[:5]
        assert [FINE_LABELS[i] for i in top] == [name for name, _ in prediction.fine]
        assert p[top] == pytest.approx([q for _, q in prediction.fine], abs=1e-6)
        superclass_sums = [p[np.asarray(FINE_TO_COARSE) == c].sum() for c in range(20)]
        assert max(superclass_sums) == pytest.approx(prediction.coarse[0][1], abs=1e-5)
        assert (5, True) == (len(prediction.coarse), prediction.coarse_derived)


def test_a_coarse_run_gives_coarse_labels_only(runs, good):
    store, ids = runs
    run, model = pr.load_run_model(store, ids["coarse"])
    [prediction] = pr.classify(model, run.label_mode, pr.read_files([good["gray.png"]]), top=3)
    assert ((), 3, False) == (prediction.fine, len(prediction.coarse), prediction.coarse_derived)
    assert {name for name, _ in prediction.coarse} <= set(COARSE_LABELS)


def test_cli_predicts_good_files_and_names_each_broken_one(runs, good, broken, capsys):
    store, ids = runs
    files = [good["photo.jpg"], broken["notes.png"], good["deep.tiff"], broken["truncated.jpg"], good["rotated.jpg"]]
    status = main(["predict", "--run", str(ids["fine"]), "--top", "3", "--db", str(store.path), *map(str, files)])
    out, err = capsys.readouterr()
    assert 1 == status
    assert [f"error: {broken['notes.png']}: not an image (Pillow cannot identify it)",
            f"error: {broken['truncated.jpg']}: truncated file (the image data ends early)"] == err.splitlines()
    model_line, *lines = out.splitlines()
    assert model_line.startswith(f"run {ids['fine']} (fine): best model: epoch 1 of 1, test acc ")
    assert [str(good["photo.jpg"]), str(good["deep.tiff"]), str(good["rotated.jpg"])] == \
        [line.split("  [")[0] for line in lines[::3]]
    assert all(line.startswith("  fine    ") and line.count("%") == 3 for line in lines[1::3])
    assert all(line.startswith("  coarse  ") and line.endswith("(summed from fine)") for line in lines[2::3])


def test_cli_with_only_good_files_exits_zero(runs, good, capsys):
    store, ids = runs
    assert 0 == main(["predict", "--run", str(ids["coarse"]), "--db", str(store.path), str(good["cmyk.jpg"])])
    out, err = capsys.readouterr()
    assert ("", 3) == (err, len(out.splitlines()))  # which model, then the image's name and its labels


def test_cli_for_an_unknown_run_is_one_line(runs, good, capsys):
    store, _ = runs
    assert 1 == main(["predict", "--run", "404", "--db", str(store.path), str(good["plain.png"])])
    assert "error: run 404 does not exist\n" == capsys.readouterr().err


def test_cli_as_a_new_process_prints_no_traceback_or_tensorflow_chatter(runs, good, broken):
    store, ids = runs
    result = subprocess.run(
        [sys.executable, "-m", "lsc_core", "predict", "--run", str(ids["fine"]), "--db", str(store.path),
         str(good["lossless.webp"]), str(broken["empty.png"]), str(broken["bomb.png"])],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert 1 == result.returncode
    assert [f"error: {broken['empty.png']}: empty file",
            f"error: {broken['bomb.png']}: too large (over 50 megapixels; refused as a possible decompression "
            "bomb)"] == result.stderr.splitlines()
    model_line, predicted = result.stdout.split("\n", 1)
    assert model_line.startswith(f"run {ids['fine']} (fine): best model: epoch 1 of 1, test acc ")
    assert predicted.startswith(f"{good['lossless.webp']}  [WEBP 64x48 RGB]\n  fine    ")


def test_pillows_warning_range_is_refused_by_our_limit_without_touching_warning_filters():
    """100 MP is above Pillow's warning limit (89 MP) and below its error (179 MP): our own
    pixel check refuses it, naming its size, and no process-wide warnings filter is
    changed on the way (Streamlit sessions are threads: one session's filter is everyone's)."""
    import threading
    import warnings

    from images import png_header_claiming

    data = png_header_claiming(10000, 10000)
    assert "warn.png: too large (10000x10000 = 100 megapixels; the limit is 50)" == \
        pr.prepare_upload("warn.png", data).error
    before = list(warnings.filters)
    threads = [threading.Thread(target=lambda: [pr.prepare_upload("warn.png", data) for _ in range(200)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert before == list(warnings.filters)
