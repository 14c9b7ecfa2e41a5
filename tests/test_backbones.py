"""Transfer backbones: each builds and trains a step (weights none, smallest size), counts
match the pure-Python analysis, a saved model reloads safely, offline ImageNet is one message."""
import os
import subprocess
import sys
import textwrap

import pytest

from lsc_core.backbones import BACKBONES
from lsc_core.config import BackboneSpec, ConfigError, RunConfig, analyze
from lsc_core.model import build_model, load_model
from lsc_core.store import COMPLETED, RUNNING
from lsc_core.train import train_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def transfer_config(name, **spec_changes):
    spec = BackboneSpec(name=name, weights="none", image_size=BACKBONES[name].min_size, head_units=16,
                        **spec_changes)
    return RunConfig(backbone=spec, epochs=1, batch_size=64, limit=64, label_mode="fine")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_trains_a_step_at_its_minimum_size(name, store, tiny_data):
    config = transfer_config(name)
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None, [1]) == (run.status, run.error, [row["epoch"] for row in store.epochs(run_id)])
    assert analyze(config).total_params == run.params


def test_fine_tuning_adds_a_phase_and_the_saved_model_reloads_in_safe_mode(store, tiny_data):
    config = transfer_config("vgg16", fine_tune_epochs=1, fine_tune_layers=4)
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, [1, 2]) == (run.status, [row["epoch"] for row in store.epochs(run_id)])
    model = load_model(run.model_path)
    assert analyze(config).total_params == model.count_params()
    # The reloaded model carries its own upscaling and preprocessing: raw 32x32 pixels in.
    assert (2, 100) == tuple(model.predict(tiny_data.x_test[:2].astype("float32"), verbose=0).shape)


def test_unfreezing_keeps_batch_normalisation_frozen():
    from lsc_core.backbones import unfreeze_top

    model = build_model(transfer_config("resnet50"))
    base = model.get_layer("backbone")
    assert not any(layer.trainable_weights for layer in base.layers)
    unfreeze_top(model, 12)
    top = base.layers[-12:]
    assert all(layer.trainable for layer in top if type(layer).__name__ != "BatchNormalization")
    assert not any(layer.trainable for layer in top if type(layer).__name__ == "BatchNormalization")
    assert not any(layer.trainable for layer in base.layers[:-12])


@pytest.mark.parametrize("size", [31, 300])
def test_image_size_outside_the_backbone_range_is_refused(size):
    config = RunConfig(backbone=BackboneSpec(name="vgg16", weights="none", image_size=size))
    assert ["image_size"] == [error.field_name for error in analyze(config).errors]
    with pytest.raises(ConfigError, match="VGG16 needs an image size from 32 to 299"):
        build_model(config)


def test_xception_minimum_is_71():
    config = RunConfig(backbone=BackboneSpec(name="xception", weights="none", image_size=70))
    assert ["backbone image_size: Xception needs an image size from 71 to 299, got 70"] == \
        [str(error) for error in analyze(config).errors]


def test_offline_imagenet_request_is_one_clear_message_naming_the_real_cause(tmp_path, tiny_npz):
    """No weights in an empty Keras home and no network (an unreachable proxy): the run fails
    saying the weights are missing and how to get them, not "invalid configuration"."""
    script = textwrap.dedent(f"""
        from lsc_core.config import BackboneSpec, RunConfig
        from lsc_core.data import load_cifar100
        from lsc_core.store import RUNNING, Store
        from lsc_core.train import train_run
        store = Store({str(tmp_path / "runs.sqlite")!r})
        config = RunConfig(backbone=BackboneSpec(name="vgg16", weights="imagenet", image_size=32), epochs=1)
        run = train_run(store, store.create_run(config, status=RUNNING),
                        load_data=lambda: load_cifar100({str(tiny_npz)!r}))
        print("RUN", run.status, run.error)
    """)
    # Port 9 (discard) refuses connections: any download attempt fails at once.
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    line = next((line for line in result.stdout.splitlines() if line.startswith("RUN")), result.stderr[-500:])
    assert line.startswith("RUN failed ImageNet weights for VGG16 are not in the Keras cache"), line
    assert str(tmp_path / "keras" / "models") in line
    assert "weights 'none'" in line
    assert not (tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").exists()


def test_a_model_file_naming_another_preprocessing_module_is_refused(tmp_path):
    """Safe-mode loading imports only the backbones' own preprocess_input modules."""
    import json
    import zipfile

    import keras

    from lsc_core.backbones import preprocess_layer

    inputs = keras.Input(shape=(32, 32, 3))
    keras.Model(inputs, preprocess_layer("vgg16")(inputs)).save(tmp_path / "good.keras")
    assert 1 == len(load_model(tmp_path / "good.keras").layers) - 1
    # The same file, its layer config edited to import a keras.applications module no backbone uses.
    with zipfile.ZipFile(tmp_path / "good.keras") as good, zipfile.ZipFile(tmp_path / "edited.keras", "w") as edited:
        for item in good.infolist():
            data = good.read(item)
            if item.filename == "config.json":
                text = json.dumps(json.loads(data))
                assert '"module": "vgg16"' in text
                data = text.replace('"module": "vgg16"', '"module": "imagenet_utils"').encode()
            edited.writestr(item, data)
    with pytest.raises(Exception) as caught:
        load_model(tmp_path / "edited.keras")
    assert "unknown preprocessing module 'imagenet_utils' in the model file" in str(caught.value)
