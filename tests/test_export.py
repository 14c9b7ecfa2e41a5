"""Exports of a real trained run, each loaded back by its own runtime and compared with Keras."""
import subprocess
import sys

import numpy as np
import pytest

from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.export import TOLERANCE, ExportError, check_images, export_bytes, export_model
from lsc_core.model import load_run_model
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A store with one fine run trained for an epoch; (db path, run id)."""
    db = tmp_path_factory.mktemp("export") / "runs.sqlite"
    store = Store(db)
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=1, batch_size=32, label_mode="fine", name="tiny"),
                              status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    return db, run_id


def keras_probabilities(db, run_id, images):
    model = load_run_model(Store(db).get_run(run_id), run_id)
    return model.predict(images.astype("float32"), verbose=0)


def run_exported(fmt, path, images):
    """The exported file's probabilities, through its own runtime (not through lsc_core)."""
    batch = images.astype("float32")
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        return session.run(None, {session.get_inputs()[0].name: batch})[0]
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        given = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(given["index"], list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # kept in a name: its variables die with the object
    return loaded.serve(tf.constant(batch)).numpy()


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_cli_export_agrees_with_keras_in_its_own_runtime(trained, tiny_npz, tiny_data, tmp_path, capsys, fmt):
    db, run_id = trained
    out = tmp_path / f"model-{fmt}"
    assert 0 == main(["export", "--run", str(run_id), "--format", fmt, str(out), "--data", str(tiny_npz),
                      "--db", str(db)])
    printed = capsys.readouterr().out
    assert f"{fmt}: top-1 identical on 100% of 100 test images" in printed
    assert f"exported to {out}: best model: epoch " in printed  # which epoch the exported model is
    images = check_images(tiny_data)
    expected, got = keras_probabilities(db, run_id, images), run_exported(fmt, out, images)
    assert (100, 100) == got.shape
    assert np.array_equal(expected.argmax(1), got.argmax(1))
    assert np.abs(expected - got).max() <= TOLERANCE


def test_download_bytes_are_the_checked_file(trained, tiny_data, tmp_path):
    db, run_id = trained
    model = load_run_model(Store(db).get_run(run_id), run_id)
    content, suffix, check = export_bytes(model, "onnx", check_images(tiny_data))
    assert (".onnx", 1.0) == (suffix, check.top1_agreement)
    (tmp_path / "m.onnx").write_bytes(content)
    got = run_exported("onnx", tmp_path / "m.onnx", check_images(tiny_data))
    assert np.array_equal(keras_probabilities(db, run_id, check_images(tiny_data)).argmax(1), got.argmax(1))
    content, suffix, _ = export_bytes(model, "savedmodel", check_images(tiny_data))
    assert ".zip" == suffix and content[:2] == b"PK"


def test_export_refuses_an_existing_path_and_leaves_it_alone(trained, tiny_data, tmp_path):
    db, run_id = trained
    model = load_run_model(Store(db).get_run(run_id), run_id)
    taken = tmp_path / "taken.onnx"
    taken.write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_model(model, "onnx", taken, check_images(tiny_data))
    assert "mine" == taken.read_text()


def test_cli_export_of_a_run_without_model_is_one_line(trained, tiny_npz, tmp_path):
    db, _ = trained
    queued = Store(db).create_run(RunConfig(layers=SMALL, epochs=1), status="queued")
    result = subprocess.run([sys.executable, "-m", "lsc_core", "export", "--run", str(queued), "--format", "onnx",
                             str(tmp_path / "x.onnx"), "--data", str(tiny_npz), "--db", str(db)],
                            capture_output=True, text=True, timeout=120)
    assert 1 == result.returncode
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert 1 == len(errors) and "has no saved model" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.onnx").exists()
