"""A run's model in the formats other runtimes read, each checked before it is offered.

Keras writes all three formats itself (`Model.export`: TensorFlow's SavedModel, LiteRT
through TensorFlow's converter, ONNX through tf2onnx). What we add is the check: the
exported file is loaded by its own runtime (TensorFlow for SavedModel, the LiteRT
interpreter for .tflite, ONNX Runtime for .onnx) and must give the Keras model's top-1
class on every test image, with probabilities within `TOLERANCE`. A file that fails the
check is removed, never offered.
"""
from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .markup import one_line
from .runtime import import_tensorflow

FORMATS = ("savedmodel", "tflite", "onnx")
KERAS_FORMAT = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
SUFFIX = {"savedmodel": "", "tflite": ".tflite", "onnx": ".onnx"}
# Largest allowed difference of any class probability between the exported model and
# Keras, on images in 0..255. The runtimes use other kernels (XNNPACK, MLAS) and sum in
# another order, so exact equality is not to be had; float32 rounding stays far below.
TOLERANCE = 1e-4
CHECK_IMAGES = 100  # test images every export is checked on


class ExportError(RuntimeError):
    """The model cannot be exported to this format, or the export disagrees with Keras; one line."""


@dataclass(frozen=True)
class ExportCheck:
    """How an exported model agreed with its Keras model."""

    format: str
    images: int
    top1_agreement: float  # share of images with the same top-1 class (must be 1.0)
    max_abs_diff: float  # largest probability difference over all images and classes

    def describe(self) -> str:
        return (f"{self.format}: top-1 identical on {self.top1_agreement:.0%} of {self.images} test images, "
                f"probabilities within {self.max_abs_diff:.1e} (tolerance {TOLERANCE:.0e})")


def export_model(model, fmt: str, out: str | Path, images: np.ndarray) -> ExportCheck:
    """Write `model` as `fmt` at `out` (a folder for savedmodel, a file otherwise) and check it
    against Keras on `images` (uint8 or float, N x 32 x 32 x 3). Raises ExportError, leaving
    nothing at `out`, when the format cannot be produced or disagrees."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if len(images) == 0:
        raise ExportError("no test images to check the export against")
    out = Path(out)
    if out.exists():
        raise ExportError(f"{out} already exists; choose a new path")
    import_tensorflow()
    batch = np.asarray(images, dtype="float32")
    expected = np.asarray(model.predict(batch, verbose=0), dtype="float32")
    # Written under a partial name (with the suffix Keras insists on) and renamed once checked,
    # so `out` never holds a half-written or unchecked model.
    partial = out.with_name(f".partial-{out.name}{SUFFIX[fmt]}")
    try:
        model.export(str(partial), format=KERAS_FORMAT[fmt], verbose=False)
        check = _compare(fmt, expected, RUNNERS[fmt](partial, batch))
        if check.top1_agreement < 1.0 or check.max_abs_diff > TOLERANCE:
            raise ExportError(f"the {fmt} export disagrees with the Keras model ({check.describe()}); "
                              "nothing was written")
        partial.rename(out)
    except ExportError:
        raise
    except Exception as exc:  # converters raise many types; the person needs the reason, in one line
        raise ExportError(f"this network cannot be exported as {fmt}: {one_line(exc)}") from None
    finally:
        _remove(partial)
    return check


def check_images(data, count: int = CHECK_IMAGES, seed: int = 0) -> np.ndarray:
    """`count` test images drawn at random (the real test set is stored grouped by class)."""
    order = np.random.default_rng(seed).permutation(len(data.x_test))[:count]
    return data.x_test[np.sort(order)]


def export_bytes(model, fmt: str, images: np.ndarray) -> tuple[bytes, str, ExportCheck]:
    """The checked export as bytes for a download: the file itself, or a .zip of the SavedModel folder.
    Returns (bytes, file suffix, check)."""
    with tempfile.TemporaryDirectory(prefix="lsc-export-") as tmp:
        out = Path(tmp) / f"model{SUFFIX[fmt]}"
        check = export_model(model, fmt, out, images)
        if fmt == "savedmodel":
            return zip_folder(out), ".zip", check
        return out.read_bytes(), SUFFIX[fmt], check


def export_run_bytes(run, fmt: str, data) -> tuple[bytes, str, ExportCheck]:
    """A run's best model exported as `fmt` and checked on the data set's test images, for a download."""
    from .model import load_run_model

    return export_bytes(load_run_model(run), fmt, check_images(data))


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


# -- each format read back by its own runtime --------------------------------------------------
def _run_savedmodel(path: Path, batch: np.ndarray) -> np.ndarray:
    import_tensorflow()
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(batch)))


def _run_tflite(path: Path, batch: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    given = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(given["index"], list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], batch.astype(given["dtype"]))
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def _run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])


RUNNERS = {"savedmodel": _run_savedmodel, "tflite": _run_tflite, "onnx": _run_onnx}


def _compare(fmt: str, expected: np.ndarray, got: np.ndarray) -> ExportCheck:
    got = np.asarray(got, dtype="float32")
    if got.shape != expected.shape:
        raise ExportError(f"the {fmt} export gives outputs of shape {got.shape}, Keras {expected.shape}")
    return ExportCheck(fmt, len(expected), float(np.mean(got.argmax(1) == expected.argmax(1))),
                       float(np.abs(got - expected).max()))


def _remove(out: Path) -> None:
    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
    else:
        out.unlink(missing_ok=True)

