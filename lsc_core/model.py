"""RunConfig -> keras.Model, a pure function of the config.

Every model takes raw 0..255 float pixels and carries its own preprocessing (a
Rescaling layer, or a backbone's `preprocess_input`), so training, evaluation and
prediction feed images the same way and a saved `.keras` file is self-contained.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from . import layers
from .config import IMAGE_SHAPE, RunConfig, validate
from .runtime import import_tensorflow


def layer_outputs(config: RunConfig):
    """The model's input tensor and the output tensor of each custom layer, in order.

    Each layer spec's Keras layers are named after its kind and 1-based position
    (`conv2d_3`, or `residual_4_<part>` for a kind made of several): explicit names keep
    a model's layer names independent of Keras's global name counters, which differ
    between threads and processes (and can clash), and let a test find each spec's
    layers to compare its parameter count with the analysis.
    """
    keras = import_tensorflow()

    inputs = keras.Input(shape=IMAGE_SHAPE, name="pixels")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    outputs = []
    for position, spec in enumerate(config.layers, start=1):
        x = layers.build(spec.kind, spec.params, f"{spec.kind}_{position}", x)
        outputs.append(x)
    return inputs, outputs


def build_model(config: RunConfig):
    """A fresh, uncompiled Keras model for a valid config (ConfigError otherwise)."""
    keras = import_tensorflow()

    validate(config)
    if config.backbone is not None:
        from .backbones import build_transfer_model
        return build_transfer_model(config)
    inputs, stack = layer_outputs(config)
    # float32 even under mixed precision: float16 softmax rounds small probabilities to 0.
    outputs = keras.layers.Dense(config.num_classes, activation="softmax", name="head", dtype="float32")(stack[-1])
    return keras.Model(inputs, outputs, name=model_name(config.display_name()))


def model_name(run_name: str) -> str:
    """A run's name as a Keras model name: TensorFlow's scope names allow only letters, digits
    and `_.-` and must start with a letter, digit or dot; a run's name may hold anything."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", run_name)
    return name if re.match(r"[A-Za-z0-9.]", name) else f"run{name}"


def compile_model(model, config: RunConfig, learning_rate=None, *, xla: bool = False,
                  steps_per_execution: int = 1) -> None:
    """The config's optimizer (lsc_core.optimizers) at `learning_rate` (a number or a schedule;
    default the config's rate), its loss and metrics (lsc_core.recipe: accuracy, and for fine
    labels the share of errors inside the right superclass, lsc_core.hierarchy); `xla`
    compiles each step with XLA, `steps_per_execution` runs that many steps per call.
    A model built under mixed precision gets Keras's loss scaling automatically."""
    from .optimizers import make_optimizer
    from .recipe import loss_and_metrics

    loss, metrics = loss_and_metrics(config)
    rate = config.learning_rate if learning_rate is None else learning_rate
    model.compile(optimizer=make_optimizer(config, rate), loss=loss, metrics=metrics, jit_compile=xla,
                  steps_per_execution=steps_per_execution)


def count_params(model) -> int:
    """Trainable plus non-trainable parameters, as DESIGN's `params` column."""
    return int(model.count_params())


def load_model(path):
    """Load a saved run model (safe mode: no arbitrary code from the file)."""
    keras = import_tensorflow()

    from .backbones import preprocess_class

    preprocess_class()  # registers the transfer models' preprocessing layer for loading
    return keras.models.load_model(path, compile=False, safe_mode=True)


class ModelUnavailable(ValueError):
    """A run has no usable saved model; the message says why, in one line."""


def load_run_model(run: Run | None, run_id: int | None = None):
    """The best-epoch model saved by a run (a row of the store)."""
    if run is None:
        raise ModelUnavailable(f"run {run_id} does not exist")
    if not run.model_path:
        # A stored path refused as outside the store's folder, else e.g. a disk full when it was saved.
        why = run.model_problem or run.error or "it never finished an epoch"
        raise ModelUnavailable(f"run {run.id} ({run.name}, {run.status}) has no saved model: {why}")
    where = f"the model of run {run.id} cannot be loaded from {run.model_path}"
    path = Path(run.model_path)
    if not path.is_file():
        raise ModelUnavailable(f"{where}: the file is missing")
    if not zipfile.is_zipfile(path):
        raise ModelUnavailable(f"{where}: not a .keras file (not a zip archive; damaged or replaced)")
    try:
        return load_model(path)
    # What a damaged or foreign .keras file raises inside Keras, h5py and json: bad JSON
    # (ValueError), a wrong structure (TypeError, KeyError, IndexError, AttributeError), an
    # unknown or unsafe layer class (TypeError, ValueError), bad weights (OSError), a
    # truncated member (EOFError, BadZipFile), runaway nesting (RecursionError).
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, RecursionError,
            zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise ModelUnavailable(f"{where}: the file is damaged or not a model of this program "
                               f"({type(exc).__name__}{': ' + reason if reason else ''})") from None
