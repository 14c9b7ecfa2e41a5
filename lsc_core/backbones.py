"""Transfer learning: a keras.applications network, frozen, under a new head.

Done the way the study's VGG16 attempt was not: the 32x32 image is upscaled to a size
the backbone accepts and fed as 0..255 values through that backbone's own
`preprocess_input` (no division by 255 first); the base runs in inference mode, so its
batch normalisation statistics stay those it was trained with, also when fine-tuning.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from .config import IMAGE_SHAPE, ConfigError, LayerRow

MAX_IMAGE_SIZE = 299  # larger gains nothing from 32x32 sources and costs memory


@dataclass(frozen=True)
class Backbone:
    application: str  # constructor in keras.applications
    module: str  # keras.applications submodule holding preprocess_input
    min_size: int  # smallest input side Keras accepts for it
    default_size: int  # the form's suggestion: a good speed/accuracy trade-off
    features: int  # width of its pooled output
    params: int  # parameters without the top (independent of the input size)


BACKBONES = {
    "vgg16": Backbone("VGG16", "vgg16", 32, 64, 512, 14_714_688),
    "vgg19": Backbone("VGG19", "vgg19", 32, 64, 512, 20_024_384),
    "resnet50": Backbone("ResNet50", "resnet50", 32, 96, 2048, 23_587_712),
    "xception": Backbone("Xception", "xception", 71, 96, 2048, 20_861_480),
    "mobilenetv2": Backbone("MobileNetV2", "mobilenet_v2", 32, 96, 1280, 2_257_984),
    "efficientnetb0": Backbone("EfficientNetB0", "efficientnet", 32, 96, 1280, 4_049_571),
}
WEIGHTS = ("imagenet", "none")
PREPROCESS_MODULES = frozenset(info.module for info in BACKBONES.values())


def analyze_backbone(config) -> tuple[list[LayerRow], list[ConfigError]]:
    """Rows and problems of a transfer config, in pure Python (no TensorFlow)."""
    spec = config.backbone
    errors: list[ConfigError] = []

    def bad(field_name: str, message: str) -> None:
        errors.append(ConfigError(f"backbone {field_name}: {message}", field_name=field_name))

    info = BACKBONES.get(spec.name)
    if info is None:
        bad("name", f"unknown backbone {spec.name!r}; choose from {', '.join(BACKBONES)}")
        return [], errors
    if spec.weights not in WEIGHTS:
        bad("weights", f"must be 'imagenet' or 'none', got {spec.weights!r}")
    if not isinstance(spec.image_size, int) or not info.min_size <= spec.image_size <= MAX_IMAGE_SIZE:
        bad("image_size", f"{info.application} needs an image size from {info.min_size} to {MAX_IMAGE_SIZE}, "
                          f"got {spec.image_size!r}")
    if not isinstance(spec.head_units, int) or spec.head_units < 0:
        bad("head_units", f"must be a whole number >= 0, got {spec.head_units!r}")
    if not isinstance(spec.head_dropout, (int, float)) or not 0 <= spec.head_dropout < 1:
        bad("head_dropout", f"must be in [0, 1), got {spec.head_dropout!r}")
    if not isinstance(spec.fine_tune_epochs, int) or spec.fine_tune_epochs < 0:
        bad("fine_tune_epochs", f"must be a whole number >= 0, got {spec.fine_tune_epochs!r}")
    if not isinstance(spec.fine_tune_layers, int) or spec.fine_tune_layers < 1:
        bad("fine_tune_layers", f"must be a whole number >= 1, got {spec.fine_tune_layers!r}")
    if not isinstance(spec.fine_tune_learning_rate, (int, float)) or not 0 < spec.fine_tune_learning_rate <= 1:
        bad("fine_tune_learning_rate", f"must be in (0, 1], got {spec.fine_tune_learning_rate!r}")
    if errors:
        return [], errors
    size, classes = spec.image_size, config.num_classes
    rows = [LayerRow(1, f"resize 32x32 -> {size}x{size}", (size, size, 3), 0),
            LayerRow(2, f"{info.module}.preprocess_input", (size, size, 3), 0),
            LayerRow(3, f"{info.application} ({spec.weights}, frozen), global average pool", (info.features,),
                     info.params)]
    width = info.features
    if spec.head_units:
        rows.append(LayerRow(4, f"dropout {spec.head_dropout} + dense {spec.head_units} relu", (spec.head_units,),
                             width * spec.head_units + spec.head_units))
        width = spec.head_units
    rows.append(LayerRow(len(rows) + 1, f"dropout {spec.head_dropout} + dense {classes} softmax (head)", (classes,),
                         width * classes + classes))
    return rows, []


@functools.cache
def preprocess_class():
    """A serializable layer applying a backbone's preprocess_input (no Lambda, so a
    saved model loads in Keras's safe mode). Registered with Keras on first call."""
    import importlib

    import keras

    @keras.saving.register_keras_serializable(package="lsc")
    class BackbonePreprocess(keras.layers.Layer):
        def __init__(self, module: str, **kwargs):
            super().__init__(**kwargs)
            # `module` comes from the .keras file being loaded: import only a backbone's own
            # (safe mode must not be a way to import an arbitrary module).
            if module not in PREPROCESS_MODULES:
                raise ValueError(f"unknown preprocessing module {module!r} in the model file; expected one of "
                                 f"{', '.join(sorted(PREPROCESS_MODULES))}")
            self.module = module
            self._preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input

        def call(self, inputs):
            return self._preprocess(inputs)

        def get_config(self):
            return {**super().get_config(), "module": self.module}

    return BackbonePreprocess


def preprocess_layer(module: str):
    return preprocess_class()(module, name="preprocess")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be had (offline without them in the Keras cache, or a broken
    download). Not a fault of the configuration, so not a ConfigError: the run's error says
    what happened and how to get the weights."""


def _load_base(info: Backbone, weights: str, size: int):
    import keras

    constructor = getattr(keras.applications, info.application)
    try:
        return constructor(include_top=False, weights=None if weights == "none" else weights,
                           input_shape=(size, size, 3), pooling="avg")
    except Exception as exc:  # offline without the Keras cache, or a corrupt download
        if weights == "none":
            raise
        cache = keras_models_dir()
        raise WeightsUnavailable(
            f"ImageNet weights for {info.application} are not in the Keras cache ({cache}) and could not "
            f"be downloaded ({type(exc).__name__}: {str(exc)[:200]}). Connect to the internet once, copy the "
            f"weights file into {cache}, or use weights 'none'.") from None


def keras_models_dir() -> str:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def build_transfer_model(config):
    """Input 32x32x3 (0..255) -> resize -> preprocess_input -> frozen base -> new head."""
    import keras

    spec = config.backbone
    info = BACKBONES[spec.name]
    inputs = keras.Input(shape=IMAGE_SHAPE, name="pixels")
    x = keras.layers.Resizing(spec.image_size, spec.image_size, interpolation="bilinear", name="upscale")(inputs)
    x = preprocess_layer(info.module)(x)
    base = _load_base(info, spec.weights, spec.image_size)
    base.trainable = False
    base.name = "backbone"
    x = base(x, training=False)  # inference mode for BN, also after unfreezing
    if spec.head_units:
        x = keras.layers.Dropout(spec.head_dropout)(x)
        x = keras.layers.Dense(spec.head_units, activation="relu")(x)
    x = keras.layers.Dropout(spec.head_dropout)(x)
    outputs = keras.layers.Dense(config.num_classes, activation="softmax", name="head", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_transfer")


def unfreeze_top(model, count: int) -> None:
    """Make the top `count` layers of the backbone trainable, batch normalisation excepted."""
    import keras

    base = model.get_layer("backbone")
    base.trainable = True
    for position, layer in enumerate(base.layers):
        top = position >= len(base.layers) - count
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
