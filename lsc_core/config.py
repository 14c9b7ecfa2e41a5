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
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from . import layers as registry  # the layer kinds
from .optimizers import OPTIMIZERS as OPTIMIZER_TABLE

IMAGE_SHAPE = (32, 32, 3)  # CIFAR-100: 32x32 RGB
NUM_CLASSES = {"coarse": 20, "fine": 100}
LABEL_MODES = tuple(NUM_CLASSES)  # ("coarse", "fine"): every label-mode choice offers these
LABEL_MODE_NAMES = {"coarse": "coarse (20 superclasses)", "fine": "fine (100 classes)"}  # how choices read
OPTIMIZERS = tuple(OPTIMIZER_TABLE)  # lsc_core/optimizers.py holds each one's settings
VALIDATIONS = ("test", "holdout")

# Size limits, checked by analyze() before anything is built: past them a config fails
# only when memory runs out, minutes later. Each is far above any sensible CIFAR network;
# the limits of one layer's parameters are in the layer registry (layers.PARAMS).
MAX_LAYERS = 200  # the study's networks have 5-10 layers; ResNet-50 has about 50 blocks' worth
MAX_PARAMS = 100_000_000  # 400 MB of float32 weights, 1.2 GB with Adam's two moments
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 8192
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit
MAX_LIMIT = 50_000  # CIFAR-100's training set


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
    def from_dict(cls, data: dict[str, Any], position: int | None = None) -> "LayerSpec":
        """A layer from JSON: a string `kind` and scalar parameters (their ranges are checked by analyze)."""
        data = dict(data)
        kind = data.pop("kind", None)
        where = f"layer {position}" if position is not None else "layer"
        if not isinstance(kind, str) or len(kind) > MAX_TEXT_CHARS:
            raise ConfigError(f"{where}: 'kind' must be a layer kind name (text), got {_show(kind)}",
                              position, "kind")
        for name, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                problem = f"must be a finite number, got {value}"
            elif not isinstance(value, (str, int, float, bool)):
                problem = f"must be a number or text, got {_json_kind(value)}"
            elif isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
                problem = f"is {len(value):,} characters long, over the limit of {MAX_TEXT_CHARS}"
            else:
                continue
            raise ConfigError(f"{where} ({_show(kind)}): {str(name)[:40]} {problem}", position, name)
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
class SpeedSettings:
    """How a run should use the machine (lsc_core/acceleration.py); None = automatic: on with a GPU,
    off on a CPU except several steps per execution.

    None of these change what is learnt beyond float rounding, so they are asked here and
    what a run really got is recorded beside it in the store.
    """

    mixed_precision: bool | None = None  # float16 compute, float32 weights and softmax head
    xla: bool | None = None  # compile each step with XLA (jit_compile)
    steps_per_execution: int | None = None  # training steps per call from Python (auto: 16 on GPU, 8 on CPU)
    data_on_device: bool | None = None  # training set held on the GPU, shuffled and augmented there
    replicas: int | None = None  # devices trained on together (MirroredStrategy); auto: every GPU


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to repeat a training run. Units and reasons in the comments."""

    label_mode: str = "coarse"  # "coarse" (20 superclasses) or "fine" (100 classes)
    layers: tuple[LayerSpec, ...] = ()  # custom stack; the softmax head is added from label_mode
    backbone: BackboneSpec | None = None  # transfer learning instead of `layers`
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # SGD only; the study used plain SGD
    nesterov: bool = False  # SGD only: Nesterov momentum
    weight_decay: float = 0.0  # decoupled, per step: weight -= learning rate x this x weight (kernels only)
    schedule: str = "constant"  # learning-rate schedule (lsc_core/schedules.py); the study's is constant
    warmup_epochs: int = 0  # linear warm-up to learning_rate over this many epochs (one-cycle: its rise)
    decay_every: int | None = None  # step schedule: epochs between decays (None: a third of the run)
    decay_factor: float = 0.1  # step schedule: the rate is multiplied by this at each decay
    label_smoothing: float = 0.0  # share of each target spread evenly over all classes
    early_stopping: int = 0  # patience: end after this many epochs without a better validation accuracy; 0 off
    plateau_patience: int = 0  # reduce-on-plateau: epochs without a better validation accuracy; 0 off
    plateau_factor: float = 0.5  # reduce-on-plateau: the rate is multiplied by this at each plateau
    batch_size: int = 64  # images per step; the study found 64 best
    epochs: int = 10
    seed: int = 0  # weights, shuffling, hold-out and augmentation all follow it
    validation: str = "test"  # "test": the test set, as the study did; "holdout": part of train
    holdout_fraction: float = 0.1  # share of the training set held out when validation="holdout"
    limit: int | None = None  # train on the first N training images only (quick runs)
    augment: tuple[str, ...] = ()  # training-image augmentations (lsc_core/augment.py), applied in menu order
    tta: bool = False  # after training, also measure test accuracy with flip averaging (reported apart)
    name: str | None = None  # run name; default: preset or backbone name plus a suffix
    preset: str | None = None  # the preset this config started from, for naming
    speed: SpeedSettings = SpeedSettings()  # batch_size above is the total over all replicas

    # -- JSON round trip -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        if isinstance(self.augment, tuple):  # as JSON reads it back
            data["augment"] = list(self.augment)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """A config from parsed JSON, every field type-checked (ConfigError names the first wrong one).

        Types only: ranges and limits are analyze()'s, so that the editor shows them all at once.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {_json_kind(data)}")
        if isinstance(data.get("augment"), bool):  # a config from before the augmentation menu
            data = {**data, "augment": ["flip", "crop"] if data["augment"] else []}
        data = typed_fields(cls, data, exclude=("layers", "backbone", "speed"))
        layers = data.get("layers") or []
        if not isinstance(layers, (list, tuple)):
            raise ConfigError(f"layers must be a list of layer objects, got {_json_kind(layers)}", field_name="layers")
        if len(layers) > MAX_LAYERS:  # refused before parsing thousands of layers
            raise ConfigError(f"layers: {len(layers):,} layers, more than the limit of {MAX_LAYERS}",
                              field_name="layers")
        parsed = []
        for position, layer in enumerate(layers, start=1):
            if not isinstance(layer, dict):
                raise ConfigError(f"layer {position}: expected an object with a 'kind', got {_json_kind(layer)}",
                                  position)
            parsed.append(LayerSpec.from_dict(layer, position))
        data["layers"] = tuple(parsed)
        backbone = data.get("backbone")
        if backbone is not None:
            if not isinstance(backbone, dict):
                raise ConfigError(f"backbone must be an object or null, got {_json_kind(backbone)}",
                                  field_name="backbone")
            data["backbone"] = BackboneSpec(**typed_fields(BackboneSpec, backbone, prefix="backbone: "))
        if "speed" in data:
            if not isinstance(data["speed"], dict):
                raise ConfigError(f"speed must be an object, got {_json_kind(data['speed'])}", field_name="speed")
            data["speed"] = SpeedSettings(**typed_fields(SpeedSettings, data["speed"], prefix="speed: "))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunConfig":
        """A config from JSON text or UTF-8 bytes (a file as read); ConfigError for anything else."""
        return cls.from_dict(parse_json(text, "config"))

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


# -- Parsing JSON from people: one clear line for anything that is not a usable config ---
MAX_JSON_BYTES = 1_000_000  # a config is a few kB; refuse megabytes before parsing them
MAX_TEXT_CHARS = 200  # any text field (a run name, a layer kind): longer is a mistake or an attack


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON `text` (str, or bytes as read from a file) parsed; ConfigError if it is not JSON a person
    could mean: not UTF-8, over MAX_JSON_BYTES, nested too deeply, or holding NaN/Infinity."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")  # an editor's byte-order mark is harmless
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                              f"offset {exc.start})") from None
    if len(text) > MAX_JSON_BYTES:
        raise ConfigError(f"{what} is longer than the limit of {MAX_JSON_BYTES:,} characters")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what}: JSON nested too deeply (thousands of levels) to be read") from None


def _refuse_constant(name: str) -> None:
    raise ConfigError(f"{name} is not a number a config may hold (JSON has no {name}; use a finite number)")


def _json_kind(value: Any) -> str:
    """How a JSON value is named in messages: its type, with the value when short."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds = {dict: "an object", list: "a list", tuple: "a list", str: "text"}
    kind = kinds.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
    return kind if isinstance(value, (dict, list, tuple)) else f"{kind} {_show(value)}"


def _show(value: Any, limit: int = 40) -> str:
    """repr() cut to `limit` characters: messages stay one short line whatever was sent."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def typed_fields(cls, data: dict[str, Any], exclude: tuple[str, ...] = (), prefix: str = "") -> dict[str, Any]:
    """`data` (parsed JSON) checked against the field types of dataclass `cls`: unknown names
    refused, whole numbers widened to float where a float belongs, NaN and infinities
    refused; ConfigError names the field. Fields of other types are left to the caller."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints), key=str)
    if unknown:
        raise ConfigError(f"{prefix}unknown setting(s): {', '.join(str(u)[:40] for u in unknown)}",
                          field_name=str(unknown[0]))
    checked = dict(data)
    for name, value in data.items():
        if name not in exclude:
            checked[name] = _typed_value(f"{prefix}{name}", name, hints[name], value)
    return checked


def _typed_value(label: str, name: str, hint: Any, value: Any) -> Any:
    optional = typing.get_origin(hint) in (types.UnionType, typing.Union) and type(None) in typing.get_args(hint)
    if optional and value is None:
        return None
    base = next((h for h in typing.get_args(hint) if h is not type(None)), hint) if optional else hint

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{label} must be {expected}{' or null' if optional else ''}, got {_json_kind(value)}",
                           field_name=name)

    if base is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        if not math.isfinite(value):
            raise ConfigError(f"{label} must be a finite number, got {value}", field_name=name)
        return float(value)
    elif base is str:
        if not isinstance(value, str):
            raise wrong("text")
        if len(value) > MAX_TEXT_CHARS:
            raise ConfigError(f"{label} is {len(value):,} characters long, over the limit of {MAX_TEXT_CHARS}",
                              field_name=name)
        if not value.isprintable():  # control characters would rewrite a terminal printing the name
            raise ConfigError(f"{label} must be printable text, got {_show(value)}", field_name=name)
    elif typing.get_origin(base) in (tuple, list) and typing.get_args(base)[0] in (bool, int, float, str):
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        return tuple(_typed_value(f"{label} item", name, typing.get_args(base)[0], item) for item in value)
    return value


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


def _resnet_fast() -> tuple[LayerSpec, ...]:
    """Widths 32-64-128-256 over 32, 16, 8 and 4 pixels, a residual block at 8 and 4 pixels:
    about 24 million multiply-adds per image, as many as seed-part2 but spent on convs
    (bench/epoch_cost.py times it: about 70 s per 50,000-image epoch on 2 busy cores)."""
    conv = lambda filters: LayerSpec.make("conv_bn", filters=filters, l2=RESNET_L2)  # noqa: E731
    pool = LayerSpec.make("maxpool2d")
    return (conv(32), pool, conv(64), pool, LayerSpec.make("residual", filters=64, l2=RESNET_L2), conv(128), pool,
            LayerSpec.make("residual", filters=128, l2=RESNET_L2), conv(256), LayerSpec.make("global_avg_pool"))


def _resnet9() -> tuple[LayerSpec, ...]:
    """The fast CIFAR ResNet-9 (Myrtle.ai, 2018): prep conv 64; conv 128, pool, residual 128;
    conv 256, pool; conv 512, pool, residual 512; global max pool; logits scaled by 1/8."""
    conv = lambda filters: LayerSpec.make("conv_bn", filters=filters, l2=RESNET_L2)  # noqa: E731
    pool = LayerSpec.make("maxpool2d")
    return (conv(64), conv(128), pool, LayerSpec.make("residual", filters=128, l2=RESNET_L2), conv(256), pool,
            conv(512), pool, LayerSpec.make("residual", filters=512, l2=RESNET_L2),
            LayerSpec.make("global_max_pool"), LayerSpec.make("scale", factor=0.125))


# Weight decay of the residual presets, as the L2 of their conv kernels: Keras's L2 adds
# l2 x sum(w^2) to the loss, so 2.5e-4 is the "weight decay 5e-4" of the ResNet papers.
RESNET_L2 = 2.5e-4


@dataclass(frozen=True)
class Measurement:
    """One benchmark of a preset: test accuracy reached within a wall time, and where."""

    labels: str  # "coarse" or "fine"
    test_accuracy: float
    minutes: float  # wall time from launch to that accuracy
    epochs: int
    machine: str  # e.g. "2-core CPU (Xeon ...), quiet"
    date: str  # ISO date of the benchmark


@dataclass(frozen=True)
class Preset:
    """A named starting point: its layers, the settings it trains with, what it is, and
    what it was measured to reach (empty until someone benchmarks it: nothing is guessed)."""

    name: str
    summary: str  # one line, for pickers and `presets`
    layers: Callable[[], tuple[LayerSpec, ...]]
    about: str  # what it is and why, for the Build page
    recipe: dict[str, Any] = field(default_factory=dict)  # RunConfig settings beyond the defaults
    measured: tuple[Measurement, ...] = ()


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("seed-part1", "Conv32-MaxPool-Conv64-Flatten-Dense128 (study, part 1)", _seed_part1,
           "The study's first network. Adam, learning rate 1e-3, batch 64, no augmentation."),
    Preset("seed-part2-dropout", "seed-part1 with dropout 0.25 / 0.25 / 0.5 (study, part 2)", _seed_part2_dropout,
           "The study's first network with dropout. Adam, learning rate 1e-3, batch 64."),
    Preset("seed-part2", "Conv32-Conv32-MaxPool-Conv64-Conv64-Dense128 with dropout (study's best)", _seed_part2,
           "The study's best network: 0.552 coarse, 0.385 fine test accuracy. Adam, learning rate 1e-3, "
           "batch 64, no augmentation."),
    Preset("resnet-fast", "residual net 32-64-128-256 with batch norm, for a 2-core CPU in 30 minutes",
           _resnet_fast,
           "A small residual network sized for CPUs: batch-normalised 3x3 convs of 32, 64, 128 and 256 "
           "filters at 32, 16, 8 and 4 pixels, residual blocks at 8 and 4 pixels, global average pooling, "
           "weight decay 5e-4 (L2 2.5e-4 on the conv kernels). Its recipe: SGD with Nesterov momentum 0.9, "
           "batch 128, one cycle of the learning rate (up to 0.1 over the first 30% of the epochs, down to 0 "
           "at the last), label smoothing 0.1, random flips and 4-pixel crops. 20 epochs of about a minute each on two "
           "CPU cores: 0.645 fine test accuracy in 18 minutes there.",
           recipe={"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": 0.1,
                   "schedule": "onecycle", "warmup_epochs": 0, "label_smoothing": 0.1,
                   "augment": ("flip", "crop"), "batch_size": 128, "epochs": 20},
           # bench/recipe.py on the full data, test set as validation; the last three epochs
           # shared the machine with the test suite.
           measured=(Measurement("fine", 0.6452, 18.0, 20, "2-core AMD EPYC CPU, no GPU", "2026-11-27"),
                     Measurement("coarse", 0.7443, 20.0, 20, "2-core AMD EPYC CPU, no GPU, other work at low priority",
                                 "2026-11-27"))),
    Preset("resnet9", "the fast CIFAR ResNet-9 (64-128-256-512, two residual blocks), for GPUs", _resnet9,
           "The ResNet-9 of Myrtle.ai's DAWNBench CIFAR-10 record: prep conv 64; conv 128, pool and a residual "
           "block; conv 256, pool; conv 512, pool and a residual block; global max pooling and logits scaled by "
           "1/8; weight decay 5e-4 (L2 2.5e-4 on the conv kernels). Its one-cycle recipe: SGD with Nesterov "
           "momentum 0.9, batch 512, the learning rate up to 0.4 over 5 epochs and down to 0 at epoch 24, "
           "label smoothing 0.2, flips, 4-pixel crops and 8x8 cutout. Too slow for a CPU: about 16 times "
           "resnet-fast's work per image.",
           recipe={"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "learning_rate": 0.4,
                   "schedule": "onecycle", "warmup_epochs": 5, "label_smoothing": 0.2,
                   "augment": ("flip", "crop", "cutout"), "batch_size": 512, "epochs": 24}),
)}


def preset(preset_name: str, /, **overrides: Any) -> RunConfig:
    """The named preset as a RunConfig: its layers and recipe (the study's: Adam, lr 1e-3,
    batch 64), with overrides."""
    if preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {preset_name!r}; choose from {', '.join(PRESETS)}", field_name="preset")
    chosen = PRESETS[preset_name]
    return RunConfig(layers=chosen.layers(), preset=preset_name, **chosen.recipe).replace(**overrides)


def measured_text(preset_name: str) -> str:
    """What a preset was measured to reach, one line per benchmark; "not measured yet" when none."""
    records = PRESETS[preset_name].measured
    if not records:
        return "not measured yet"
    return "\n".join(f"{m.labels}: {m.test_accuracy:.3f} test accuracy in {m.minutes:g} min ({m.epochs} epochs) "
                     f"on {m.machine}, {m.date}" for m in records)


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
        return [ConfigError(f"layer {position}: unknown layer kind {_show(layer.kind)}; "
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
        bad("label_mode", f"must be 'coarse' or 'fine', got {_show(config.label_mode)}")
    for name, problem in recipe_problems(config):
        bad(name, problem)
    if isinstance(config.learning_rate, bool) or not isinstance(config.learning_rate, (int, float)) \
            or not 0 < config.learning_rate <= 10:
        bad("learning_rate", f"must be a number in (0, 10], got {_show(config.learning_rate)}")
    if not isinstance(config.momentum, (int, float)) or not 0 <= config.momentum < 1:
        bad("momentum", f"must be in [0, 1), got {_show(config.momentum)}")
    for name, limit in (("batch_size", MAX_BATCH_SIZE), ("epochs", MAX_EPOCHS)):
        value = getattr(config, name)
        if not _positive_int(value):
            bad(name, f"must be a whole number of at least 1, got {_show(value)}")
        elif value > limit:
            bad(name, f"{value:,} is over the limit of {limit:,}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or not 0 <= config.seed <= MAX_SEED:
        bad("seed", f"must be a whole number from 0 to {MAX_SEED:,}, got {_show(config.seed)}")
    if config.validation not in VALIDATIONS:
        bad("validation", f"must be 'test' or 'holdout', got {_show(config.validation)}")
    if not isinstance(config.holdout_fraction, (int, float)) or not 0 < config.holdout_fraction < 1:
        bad("holdout_fraction", f"must be in (0, 1), got {_show(config.holdout_fraction)}")
    if config.limit is not None and not _positive_int(config.limit):
        bad("limit", f"must be a whole number of at least 1, got {_show(config.limit)}")
    elif config.limit is not None and config.limit > MAX_LIMIT:
        bad("limit", f"{config.limit:,} is over the limit of {MAX_LIMIT:,} (the training set's size)")
    return errors + _check_speed(config)


MAX_STEPS_PER_EXECUTION = 1000  # more steps per call only delays progress and stops
MAX_REPLICAS = 64


def _check_speed(config: RunConfig) -> list[ConfigError]:
    """Problems with the speed settings that show without knowing the machine (acceleration.plan_speed
    checks the rest, e.g. more replicas than devices)."""
    errors = []
    speed = config.speed
    for name, limit in (("steps_per_execution", MAX_STEPS_PER_EXECUTION), ("replicas", MAX_REPLICAS)):
        value = getattr(speed, name)
        if value is not None and (not _positive_int(value) or value > limit):
            errors.append(ConfigError(f"speed: {name} must be a whole number from 1 to {limit}, got {_show(value)}",
                                      field_name=name))
    if _positive_int(speed.replicas) and _positive_int(config.batch_size) and config.batch_size % speed.replicas:
        errors.append(ConfigError(f"speed: batch size {config.batch_size} does not split evenly over "
                                  f"{speed.replicas} replicas", field_name="replicas"))
    return errors


def recipe_problems(config: RunConfig) -> list[tuple[str, str]]:
    """(field, problem) for the optimizer, schedule, regularisation and augmentation settings."""
    from . import augment, optimizers, schedules

    problems = optimizers.check(config) + schedules.check(config)
    for name in ("label_smoothing",):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            problems.append((name, f"must be a number in [0, 1), got {value!r}"))
    for name in ("early_stopping", "plateau_patience"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append((name, f"must be a whole number of epochs >= 0 (0 is off), got {value!r}"))
    factor = config.plateau_factor
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
        problems.append(("plateau_factor", f"must be in (0, 1), got {factor!r}"))
    problems += [("augment", problem) for problem in augment.check(config.augment)]
    if not isinstance(config.tta, bool):
        problems.append(("tta", f"must be true or false, got {config.tta!r}"))
    return problems


def analyze(config: RunConfig) -> Analysis:
    """Every layer's output shape and parameters, and every problem with the config."""
    errors = _check_hyperparameters(config)
    if config.backbone is not None:
        from .backbones import analyze_backbone  # transfer networks have their own rules
        rows, backbone_errors = analyze_backbone(config)
        return Analysis(tuple(rows), tuple(errors + backbone_errors))
    if not config.layers:
        errors.append(ConfigError("the network has no layers; add at least one", field_name="layers"))
    if len(config.layers) > MAX_LAYERS:
        errors.append(ConfigError(f"layers: {len(config.layers):,} layers, more than the limit of {MAX_LAYERS}",
                                  field_name="layers"))
        return Analysis((), tuple(errors))
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
    total = sum(row.params for row in rows)
    if total > MAX_PARAMS:
        errors.append(ConfigError(f"the network has {total:,} parameters, over the limit of {MAX_PARAMS:,}; "
                                  "use fewer filters or units, or pool before flatten", field_name="layers"))
    return Analysis(tuple(rows), tuple(errors))


def validate(config: RunConfig) -> RunConfig:
    """The config itself if valid; else raise its first problem as ConfigError."""
    problems = analyze(config).errors
    if problems:
        raise problems[0]
    return config


def flat_settings(config: dict) -> dict[str, Any]:
    """A config (as stored: `RunConfig.to_dict()`) as flat scalar settings, for tables that set
    runs side by side and for TensorBoard's HParams: layers become `layer<N>.<parameter>`
    (1-based, as the Build page numbers them, `layer<N>.kind` included), nested settings
    `<field>.<name>`, lists comma-joined text; None stays None."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "layers":
            for number, layer in enumerate(value or (), start=1):
                flat.update(flat_settings({f"layer{number}": layer}))
        elif isinstance(value, dict):
            flat.update({f"{key}.{name}": item for name, item in flat_settings(value).items()})
        elif isinstance(value, (list, tuple)):
            flat[key] = ", ".join(map(str, value))
        else:
            flat[key] = value
    return flat
