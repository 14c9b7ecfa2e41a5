"""Grad-CAM on a real model trained to look at one quadrant; overlays; `predict --explain`."""
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from lsc_core import explain
from lsc_core.config import BackboneSpec, LayerSpec, RunConfig
from lsc_core.model import build_model, compile_model
from lsc_core.store import COMPLETED, RUNNING, Store
from lsc_core.train import save_atomically
from quadrants import COLOURS, DISTRACTOR_QUADRANT, LABEL_QUADRANT, quadrant_images, quadrant_arrays, quadrant_shares

REPO = Path(__file__).resolve().parent.parent
QUADRANT_NET = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=2),
                LayerSpec.make("conv2d", filters=8), LayerSpec.make("flatten"))
TOP_RIGHT, BOTTOM_LEFT = (0, 1), (1, 0)
EPOCHS = 8


@pytest.fixture(scope="module")
def quadrant_run(tmp_path_factory):
    """(store path, run id, model) of a completed coarse run whose network learned the quadrant data.

    Trained here rather than by train_run: the trainer keeps the first epoch with the best
    validation accuracy, and on this data that is an early epoch at 100%, before the
    features have become specific to the label colours (the heat is then still diffuse).
    """
    home = tmp_path_factory.mktemp("quadrants")
    arrays = quadrant_arrays()
    store = Store(home / "runs.sqlite")
    config = RunConfig(layers=QUADRANT_NET, label_mode="coarse", epochs=EPOCHS, batch_size=32,
                       learning_rate=3e-3, name="quadrant")
    run_id = store.create_run(config, status=RUNNING)
    keras.utils.set_random_seed(0)
    model = build_model(config)
    compile_model(model, config)
    model.fit(arrays["x_train"].astype(np.float32), arrays["y_train_coarse"], epochs=EPOCHS, batch_size=32, verbose=0)
    accuracy = model.evaluate(arrays["x_test"].astype(np.float32), arrays["y_test_coarse"], verbose=0)[1]
    assert accuracy > 0.95
    path = store.artifacts / str(run_id) / "best.keras"
    save_atomically(model, path)
    store.set_model_path(run_id, path)
    store.finish_run(run_id, COMPLETED)
    return home / "runs.sqlite", run_id, model


def _hot_share(heat: np.ndarray, quadrant: tuple[int, int]) -> float:
    """Of the heat at or above half its peak, the share inside `quadrant` (heat is 16x16)."""
    hot = heat * (heat >= 0.5)
    rows, columns = (slice(8 * quadrant[0], 8 * quadrant[0] + 8), slice(8 * quadrant[1], 8 * quadrant[1] + 8))
    return float(hot[rows, columns].sum() / hot.sum())


def test_the_top_class_lights_up_the_quadrant_the_model_learned_to_look_at(quadrant_run):
    _, _, model = quadrant_run
    images, labels, _ = quadrant_images(48, np.random.default_rng(7))
    result = explain.Explainer(model).explain(images)
    assert labels.tolist() == result.classes.tolist()  # top class = the label it learned
    assert ((48, 16, 16), 1.0) == (result.heat.shape, float(result.heat.max()))
    shares = quadrant_shares(result.heat.mean(axis=0))
    print("top class: quadrant shares", shares.round(3).tolist(), "hot share",
          np.mean([_hot_share(h, TOP_RIGHT) for h in result.heat]).round(3))
    assert shares[TOP_RIGHT] > 1.5 * np.delete(shares.ravel(), 1).max(), shares
    assert np.mean([_hot_share(h, TOP_RIGHT) for h in result.heat]) > 0.6


def test_a_picked_class_moves_the_heat_to_where_that_class_is(quadrant_run):
    _, _, model = quadrant_run
    images, labels, distractors = quadrant_images(48, np.random.default_rng(8), distractor=True)
    explainer = explain.Explainer(model)
    picked, top = explainer.explain(images, distractors), explainer.explain(images)
    assert distractors.tolist() == picked.classes.tolist()
    shares, top_shares = quadrant_shares(picked.heat.mean(axis=0)), quadrant_shares(top.heat.mean(axis=0))
    print("picked class: quadrant shares", shares.round(3).tolist(), "top class:", top_shares.round(3).tolist())
    assert BOTTOM_LEFT == np.unravel_index(np.argmax(shares), shares.shape), shares
    assert shares[BOTTOM_LEFT] > 1.3 * top_shares[BOTTOM_LEFT]


def test_predict_explain_writes_a_png_hot_where_the_model_looks(quadrant_run, tmp_path):
    db, run_id, _ = quadrant_run
    images, _, _ = quadrant_images(2, np.random.default_rng(9))
    images[:, LABEL_QUADRANT[0], LABEL_QUADRANT[1]] = COLOURS[2]  # blue: far from the red of hot heat
    photo, scan = tmp_path / "photo.jpg", tmp_path / "scan.png"
    Image.fromarray(images[0]).resize((256, 256), Image.Resampling.NEAREST).save(photo, quality=95)
    Image.fromarray(images[1]).resize((96, 96), Image.Resampling.NEAREST).save(scan)
    out = tmp_path / "cam.png"
    result = subprocess.run([sys.executable, "-m", "lsc_core", "predict", "--run", str(run_id), str(photo), str(scan),
                             "--explain", str(out), "--db", str(db)], capture_output=True, text=True, cwd=REPO)
    assert (0, "") == (result.returncode, result.stderr), result.stderr
    written = tmp_path / "cam-photo.png"  # several images: one file each, named after the image
    assert f"explain {written}: Grad-CAM of 'flowers'" in result.stdout
    assert (96, 96) == Image.open(tmp_path / "cam-scan.png").size
    overlaid = np.asarray(Image.open(written).convert("RGB"), dtype=np.float64)
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float64)
    assert original.shape == overlaid.shape
    # The overlay's colour is opaque in proportion to the heat: the change shows where the heat is.
    shares = quadrant_shares(np.abs(overlaid - original).sum(axis=-1))
    print("predict --explain: change per quadrant", shares.round(3).tolist())
    assert TOP_RIGHT == np.unravel_index(np.argmax(shares), shares.shape), shares
    assert shares[TOP_RIGHT] > 0.5


def test_explain_paths_name_each_image():
    assert [Path("/o/cam.png")] == explain.explain_paths("/o/cam.png", ["a/photo.jpg"])
    assert [Path("/o/cam-photo.png"), Path("/o/cam-scan.png"), Path("/o/cam-photo-2.png")] == \
        explain.explain_paths("/o/cam.png", ["a/photo.jpg", "scan.tiff", "b/photo.png"])


def test_a_network_without_a_convolution_says_so(tmp_path):
    model = build_model(RunConfig(layers=(LayerSpec.make("flatten"), LayerSpec.make("dense", units=8))))
    with pytest.raises(explain.NoFeatureMap, match="has no convolutional layer"):
        explain.Explainer(model)


def test_a_residual_block_output_is_a_feature_map():
    """The last 4-D output counts whatever its layer class: here the activation after a residual Add."""
    layers = (LayerSpec.make("separable_conv2d", filters=4), LayerSpec.make("residual", filters=8),
              LayerSpec.make("maxpool2d", pool_size=2),  # trailing pooling is passed over: it only coarsens
              LayerSpec.make("flatten"))
    explainer = explain.Explainer(build_model(RunConfig(layers=layers, label_mode="coarse")))
    assert explain.FeatureLayer("residual_2_act2", None, (32, 32, 8)) == explainer.layer
    result = explainer.explain(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)), [3, 5])
    assert ((2, 32, 32), [3, 5]) == (result.heat.shape, result.classes.tolist())


def test_a_transfer_model_is_explained_from_its_backbones_last_conv_block():
    config = RunConfig(backbone=BackboneSpec(name="vgg16", weights="none", image_size=32), layers=(), preset=None,
                       label_mode="coarse")
    explainer = explain.Explainer(build_model(config))
    assert ("backbone", "block5_conv3", (2, 2, 512)) == (explainer.layer.backbone, explainer.layer.name,
                                                         explainer.layer.shape)
    result = explainer.explain(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)))
    assert (2, 2, 2) == result.heat.shape and (2, 20) == result.probabilities.shape


def test_grad_cam_weights_channels_by_their_mean_gradient():
    feature_map = np.zeros((1, 2, 2, 2), np.float32)
    feature_map[0, 0, 1, 0] = 2.0  # channel 0 fires top-right
    feature_map[0, 1, 0, 1] = 3.0  # channel 1 fires bottom-left
    gradients = np.stack([np.full((2, 2), 1.0), np.full((2, 2), -1.0)], axis=-1)[None].astype(np.float32)
    assert [[[0.0, 1.0], [0.0, 0.0]]] == explain.grad_cam(feature_map, gradients).tolist()  # negative evidence cut
    assert [[[0.0, 0.0], [0.0, 0.0]]] == explain.grad_cam(feature_map, -np.abs(gradients)).tolist()


def test_overlay_leaves_cold_pixels_alone_and_colours_hot_ones():
    image = np.full((4, 6, 3), 100, np.uint8)
    assert image.tolist() == explain.overlay(image, np.zeros((2, 2))).tolist()
    hot = explain.overlay(image, np.ones((2, 2)))
    expected = np.round(0.4 * 100 + 0.6 * np.array([220, 0, 0])).astype(int).tolist()
    assert [expected] * 24 == hot.reshape(-1, 3).tolist()
    assert [[0, 0, 160], [220, 0, 0]] == explain.colourise(np.array([0.0, 1.0])).tolist()
    assert (3, 3, 3) == explain.centre_square(np.zeros((3, 7, 3))).shape


def test_predict_explain_into_a_missing_folder_is_one_line(quadrant_run, tmp_path):
    db, run_id, _ = quadrant_run
    photo = tmp_path / "photo.png"
    Image.fromarray(quadrant_images(1, np.random.default_rng(0))[0][0]).save(photo)
    result = subprocess.run([sys.executable, "-m", "lsc_core", "predict", "--run", str(run_id), str(photo),
                             "--explain", str(tmp_path / "nowhere" / "cam.png"), "--db", str(db)],
                            capture_output=True, text=True, cwd=REPO)
    assert (1, [f"error: --explain: the folder {tmp_path / 'nowhere'} does not exist"]) == \
        (result.returncode, result.stderr.splitlines())
