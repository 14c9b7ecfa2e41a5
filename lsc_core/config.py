"""Run configurations: what a training run is, checked before anything is built.

A `RunConfig` is plain data with a JSON round trip. `analyze()` infers every layer's
output shape and parameter count in pure Python (no TensorFlow import), so the
dashboard can show a live summary and refuse an impossible network while a person is
still editing it. `build_model` in `model.py` turns a valid config into Keras layers
with exactly the counts computed here (a test checks that).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from . import layers as registry  # the layer kinds

IMAGE_SHAPE = (32, 32, 3)  # CIFAR-100: 32x32 RGB
NUM_CLASSES = {"coarse": 20, "fine": 100}
LABEL_MODES = tuple(NUM_CLASSES)  # ("coarse", "fine"): every label-mode choice offers these
LABEL_MODE_NAMES = {"coarse": "coarse (20 superclasses)", "fine": "fine (100 classes)"}  # how choices read
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
VALIDATIONS = ("test", "holdout")


class ConfigError(ValueError):
    """An impossible configuration. `position` is the 1-based layer it concerns, if any."""

    def __init__(self, message: str, position: int | None = None, field_name: str | None = None):
        super().__init__(message)
        self.position = position
        self.field_name = field_name


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the custom stack: its kind and its parameters (defaults filled in)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, kind: str, **params: Any) -> "LayerSpec":
        return cls(kind, {**registry.defaults(kind), **params})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LayerSpec":
        data = dict(data)
        kind = data.pop("kind", None)
        return cls.make(kind, **data)

    def describe(self) -> str:
        """Short human label, e.g. 'conv2d 32 3x3 relu'."""
        return registry.KINDS[self.kind].describe(self.params) if self.kind in registry.KINDS else self.kind


@dataclass(frozen=True)
class BackboneSpec:
    """A pretrained `keras.applications` network under a new head (transfer learning)."""

    name: str = "vgg16"
    weights: str = "imagenet"  # "imagenet" or "none"
    image_size: int = 64  # the 32x32 images are upscaled to this before the backbone
    head_units: int = 256  # dense units of the new head; 0 for none
    head_dropout: float = 0.5
    fine_tune_epochs: int = 0  # second phase with the top blocks unfrozen
    fine_tune_layers: int = 20  # how many top backbone layers are unfrozen for it
    fine_tune_learning_rate: float = 1e-5


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to repeat a training run. Units and reasons in the comments."""

    label_mode: str = "coarse"  # "coarse" (20 superclasses) or "fine" (100 classes)
    layers: tuple[LayerSpec, ...] = ()  # custom stack; the softmax head is added from label_mode
    backbone: BackboneSpec | None = None  # transfer learning instead of `layers`
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # SGD only; the study used plain SGD
    batch_size: int = 64  # images per step; the study found 64 best
    epochs: int = 10
    seed: int = 0  # weights, shuffling, hold-out and augmentation all follow it
    validation: str = "test"  # "test": the test set, as the study did; "holdout": part of train
    holdout_fraction: float = 0.1  # share of the training set held out when validation="holdout"
    limit: int | None = None  # train on the first N training images only (quick runs)
    augment: bool = False  # random flips and 4-pixel shifts of the training images
    name: str | None = None  # run name; default: preset or backbone name plus a suffix
    preset: str | None = None  # the preset this config started from, for naming

    # -- JSON round trip -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}", field_name=unknown[0])
        data = dict(data)
        layers = data.get("layers") or []
        if not isinstance(layers, (list, tuple)):
            raise ConfigError("layers must be a list of layer objects", field_name="layers")
        parsed = []
        for position, layer in enumerate(layers, start=1):
            if not isinstance(layer, dict):
                raise ConfigError(f"layer {position}: expected an object with a 'kind'", position)
            parsed.append(LayerSpec.from_dict(layer))
        data["layers"] = tuple(parsed)
        if isinstance(data.get("backbone"), dict):
            backbone_fields = {f.name for f in dataclasses.fields(BackboneSpec)}
            extra = sorted(set(data["backbone"]) - backbone_fields)
            if extra:
                raise ConfigError(f"unknown backbone setting(s): {', '.join(extra)}", field_name="backbone")
            data["backbone"] = BackboneSpec(**data["backbone"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("a config must be a JSON object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @property
    def total_epochs(self) -> int:
        """Epochs over all phases (a fine-tuned transfer run has two)."""
        return self.epochs + (self.backbone.fine_tune_epochs if self.backbone is not None else 0)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES.get(self.label_mode, 0)

    def display_name(self) -> str:
        """Base of the run name: explicit name, else preset or backbone, else 'custom'."""
        if self.name:
            return self.name
        if self.backbone is not None:
            return self.backbone.name
        return self.preset or "custom"


# -- Presets: the study's networks (heads are added from the label mode) ---------------
def _conv(filters: int) -> LayerSpec:
    return LayerSpec.make("conv2d", filters=filters)


def _seed_part1() -> tuple[LayerSpec, ...]:
    return (_conv(32), LayerSpec.make("maxpool2d"), _conv(64), LayerSpec.make("flatten"),
            LayerSpec.make("dense", units=128))


def _seed_part2_dropout() -> tuple[LayerSpec, ...]:
    drop = lambda rate: LayerSpec.make("dropout", rate=rate)  # noqa: E731
    return (_conv(32), LayerSpec.make("maxpool2d"), drop(0.25), _conv(64), LayerSpec.make("flatten"),
            drop(0.25), LayerSpec.make("dense", units=128), drop(0.5))


def _seed_part2() -> tuple[LayerSpec, ...]:
    drop = lambda rate: LayerSpec.make("dropout", rate=rate)  # noqa: E731
    return (_conv(32), _conv(32), LayerSpec.make("maxpool2d"), drop(0.25), _conv(64), _conv(64),
            LayerSpec.make("flatten"), drop(0.25), LayerSpec.make("dense", units=128), drop(0.5))


PRESETS = {
    "seed-part1": _seed_part1,
    "seed-part2-dropout": _seed_part2_dropout,
    "seed-part2": _seed_part2,
}
PRESET_DESCRIPTIONS = {
    "seed-part1": "Conv32-MaxPool-Conv64-Flatten-Dense128 (study, part 1)",
    "seed-part2-dropout": "seed-part1 with dropout 0.25 / 0.25 / 0.5 (study, part 2)",
    "seed-part2": "Conv32-Conv32-MaxPool-Conv64-Conv64-Dense128 with dropout (study's best)",
}


def preset(preset_name: str, /, **overrides: Any) -> RunConfig:
    """The named preset as a RunConfig (Adam, lr 1e-3, batch 64), with overrides."""
    if preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {preset_name!r}; choose from {', '.join(PRESETS)}", field_name="preset")
    return RunConfig(layers=PRESETS[preset_name](), preset=preset_name).replace(**overrides)


# -- Analysis: shapes, parameter counts, every problem found ----------------------------
@dataclass(frozen=True)
class LayerRow:
    position: int  # 1-based; the head is len(layers) + 1
    label: str
    output_shape: tuple[int, ...] | None  # None once the stack is broken
    params: int


@dataclass(frozen=True)
class Analysis:
    rows: tuple[LayerRow, ...]
    errors: tuple[ConfigError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    def errors_at(self, position: int | None) -> list[str]:
        return [str(e) for e in self.errors if e.position == position]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_params(position: int, layer: LayerSpec) -> list[ConfigError]:
    """Problems with one layer's own parameters, independent of its input shape."""
    if layer.kind not in registry.KINDS:
        return [ConfigError(f"layer {position}: unknown layer kind {layer.kind!r}; "
                            f"choose from {', '.join(registry.KINDS)}", position, "kind")]
    return [ConfigError(f"layer {position} ({layer.kind}): {problem}", position, problem.field_name)
            for problem in registry.check_params(layer.kind, layer.params)]


def _propagate(position: int, layer: LayerSpec, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Output shape and parameter count of a valid layer on `shape`; ConfigError if impossible."""
    try:
        return registry.output(layer.kind, layer.params, shape)
    except registry.LayerProblem as problem:
        raise ConfigError(f"layer {position} ({layer.kind}): {problem}", position, problem.field_name) from None


def _check_hyperparameters(config: RunConfig) -> list[ConfigError]:
    errors = []

    def bad(name: str, message: str) -> None:
        errors.append(ConfigError(f"{name}: {message}", field_name=name))

    if config.label_mode not in NUM_CLASSES:
        bad("label_mode", f"must be 'coarse' or 'fine', got {config.label_mode!r}")
    if config.optimizer not in OPTIMIZERS:
        bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    if isinstance(config.learning_rate, bool) or not isinstance(config.learning_rate, (int, float)) \
            or not 0 < config.learning_rate <= 10:
        bad("learning_rate", f"must be a number in (0, 10], got {config.learning_rate!r}")
    if not isinstance(config.momentum, (int, float)) or not 0 <= config.momentum < 1:
        bad("momentum", f"must be in [0, 1), got {config.momentum!r}")
    for name in ("batch_size", "epochs"):
        if not _positive_int(getattr(config, name)):
            bad(name, f"must be a whole number of at least 1, got {getattr(config, name)!r}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
        bad("seed", f"must be a whole number >= 0, got {config.seed!r}")
    if config.validation not in VALIDATIONS:
        bad("validation", f"must be 'test' or 'holdout', got {config.validation!r}")
    if not isinstance(config.holdout_fraction, (int, float)) or not 0 < config.holdout_fraction < 1:
        bad("holdout_fraction", f"must be in (0, 1), got {config.holdout_fraction!r}")
    if config.limit is not None and not _positive_int(config.limit):
        bad("limit", f"must be a whole number of at least 1, got {config.limit!r}")
    return errors


def analyze(config: RunConfig) -> Analysis:
    """Every layer's output shape and parameters, and every problem with the config."""
    errors = _check_hyperparameters(config)
    if config.backbone is not None:
        from .backbones import analyze_backbone  # transfer networks have their own rules
        rows, backbone_errors = analyze_backbone(config)
        return Analysis(tuple(rows), tuple(errors + backbone_errors))
    if not config.layers:
        errors.append(ConfigError("the network has no layers; add at least one", field_name="layers"))
    rows: list[LayerRow] = []
    shape: tuple[int, ...] | None = IMAGE_SHAPE
    for position, layer in enumerate(config.layers, start=1):
        problems = _check_params(position, layer)
        errors.extend(problems)
        if problems or shape is None:
            shape = None
            rows.append(LayerRow(position, layer.describe(), None, 0))
            continue
        try:
            shape, params = _propagate(position, layer, shape)
        except ConfigError as exc:
            errors.append(exc)
            shape, params = None, 0
        rows.append(LayerRow(position, layer.describe(), shape, params))
    head = len(config.layers) + 1
    classes = config.num_classes
    if shape is not None and len(shape) == 3:
        errors.append(ConfigError(f"the network ends in a {shape[0]}x{shape[1]}x{shape[2]} feature map; "
                                  "add flatten or global_avg_pool before the classifier", head))
        shape = None
    head_params = shape[0] * classes + classes if shape is not None and classes else 0
    rows.append(LayerRow(head, f"dense {classes} softmax (head)", (classes,) if shape else None, head_params))
    return Analysis(tuple(rows), tuple(errors))


def validate(config: RunConfig) -> RunConfig:
    """The config itself if valid; else raise its first problem as ConfigError."""
    problems = analyze(config).errors
    if problems:
        raise problems[0]
    return config
