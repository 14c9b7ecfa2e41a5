"""The Build page's editable network: a RunConfig as plain, mutable, form-shaped data.

An `EditorState` holds the custom layer list (each layer with a stable `uid`, so a
page can key its widgets by layer and keep them attached while layers move), the
hyperparameters, the transfer-learning choice and the backbone settings. Edits are
coerced to the types a RunConfig expects but never refused here: `to_config()` always
gives a RunConfig, and `lsc_core.config.analyze` says what is wrong and where, so a
person sees the problem next to what they typed instead of losing the edit.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import layers as registry  # the layer kinds, their parameters and how the form shows them
from .augment import canonical as canonical_augment
from .backbones import BACKBONES, MAX_IMAGE_SIZE
from .config import (LABEL_MODES, PRESETS, Analysis, BackboneSpec, ConfigError, LayerSpec, RunConfig, analyze,
                     measured_text, preset)

CUSTOM, TRANSFER = "custom", "transfer"  # the two kinds of network the form builds
# Speed settings (config.SpeedSettings) as the form offers them: switches and counts.
SPEED_SWITCHES = {"mixed_precision": "Mixed precision (float16)", "xla": "XLA compilation",
                  "data_on_device": "Data held on the GPU"}
SPEED_SWITCH_VALUES = {"auto": None, "on": True, "off": False}
SPEED_COUNTS = {"steps_per_execution": "Steps per execution (empty: automatic)",
                "replicas": "Replicas, GPUs trained on together (empty: all)"}
# RunConfig fields edited as hyperparameters (layers, backbone and preset are edited apart).
SETTINGS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("layers", "backbone", "preset"))
_SETTING_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in SETTINGS}
_BACKBONE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BackboneSpec)}
# Narrow enough to sit beside the editor; a layer's problem is spelled out in its own box there.
SUMMARY_COLUMNS = ("position", "layer", "output", "params")
PROBLEM_MARK = "⚠ "  # starts the summary's label of a layer that has a problem
LAYER_KINDS = tuple(registry.KINDS)  # what the form's "Add a layer" offers


def kind_label(kind: str) -> str:
    """A layer kind as the "Add a layer" list shows it, e.g. 'residual: two 3x3 conv-BN plus a shortcut ...'."""
    return f"{kind}: {registry.KINDS[kind].about}"


def layer_fields(kind: str) -> list[tuple[str, registry.ParamSpec]]:
    """The parameters of a layer `kind` with how the form shows each, in reading order
    (none for an unknown kind: analysis names it)."""
    return [(name, registry.PARAMS[name]) for name in registry.param_names(kind)]


def _new_token() -> str:
    return secrets.token_hex(4)


@dataclass
class EditorState:
    """A network being edited. `token` changes with every fresh start, so widget keys built
    from it never carry a value over from a network that was replaced."""

    layers: list[dict[str, Any]] = field(default_factory=list)  # {"uid", "kind", "params"}
    settings: dict[str, Any] = field(default_factory=lambda: dict(_SETTING_DEFAULTS))
    network: str = CUSTOM
    backbone: dict[str, Any] = field(default_factory=lambda: dict(_BACKBONE_DEFAULTS))
    preset: str | None = None
    next_uid: int = 1
    token: str = field(default_factory=_new_token)

    # -- layers -------------------------------------------------------------------------
    def add_layer(self, kind: str, position: int | None = None) -> int:
        """Insert a layer of `kind` with default parameters at 1-based `position` (default:
        the end); returns its uid."""
        if kind not in registry.KINDS:
            raise ConfigError(f"unknown layer kind {kind!r}; choose from {', '.join(registry.KINDS)}")
        uid = self.next_uid
        self.next_uid += 1
        index = len(self.layers) if position is None else min(max(int(position) - 1, 0), len(self.layers))
        self.layers.insert(index, {"uid": uid, "kind": kind, "params": registry.defaults(kind)})
        return uid

    def remove_layer(self, uid: int) -> None:
        self.layers.pop(self._index(uid))

    def move_layer(self, uid: int, offset: int) -> None:
        """Move a layer up (offset -1) or down (+1); at either end it stays where it is."""
        index = self._index(uid)
        target = min(max(index + offset, 0), len(self.layers) - 1)
        self.layers.insert(target, self.layers.pop(index))

    def set_param(self, uid: int, name: str, value: Any) -> None:
        """Set one layer parameter, coerced to the type of its default (e.g. "64" -> 64)."""
        layer = self.layers[self._index(uid)]
        default = registry.defaults(layer["kind"]).get(name)
        layer["params"][name] = coerce(value, default)

    def position(self, uid: int) -> int:
        """1-based position of the layer with `uid` (the position analyze() reports)."""
        return self._index(uid) + 1

    def _index(self, uid: int) -> int:
        for index, layer in enumerate(self.layers):
            if layer["uid"] == uid:
                return index
        raise KeyError(f"no layer with uid {uid}")

    # -- hyperparameters and the backbone -------------------------------------------------
    def set_setting(self, name: str, value: Any) -> None:
        """Set one hyperparameter. Empty limit or name mean none (all images, default name)."""
        if name not in SETTINGS:
            raise KeyError(f"unknown setting {name!r}")
        if name in ("limit", "name") and value in (None, "", 0):
            value = None
        elif name == "limit":
            value = coerce(value, 1)
        elif name == "name":
            value = str(value).strip() or None
        elif name == "augment" and isinstance(value, (list, tuple)):
            value = canonical_augment(value)
        else:
            value = coerce(value, _SETTING_DEFAULTS[name])
        self.settings[name] = value

    def set_speed(self, name: str, value: Any) -> None:
        """Set one speed setting: "auto"/"on"/"off" for the switches, a number for the counts
        (empty or 0: automatic)."""
        speed = self.settings["speed"]
        if name not in {f.name for f in dataclasses.fields(speed)}:
            raise KeyError(f"unknown speed setting {name!r}")
        if name in SPEED_COUNTS:
            value = None if value in (None, "", 0) else coerce(value, 1)
        else:
            value = SPEED_SWITCH_VALUES[value]
        self.settings["speed"] = dataclasses.replace(speed, **{name: value})

    def speed_choice(self, name: str) -> str | int | None:
        """A speed setting as the form shows it: "auto"/"on"/"off", or the count (None: automatic)."""
        value = getattr(self.settings["speed"], name)
        if name in SPEED_COUNTS:
            return value
        return {None: "auto", True: "on", False: "off"}[value]

    def set_backbone(self, name: str, value: Any) -> None:
        """Set one backbone setting; choosing another backbone resets the image size to its default."""
        if name not in _BACKBONE_DEFAULTS:
            raise KeyError(f"unknown backbone setting {name!r}")
        self.backbone[name] = coerce(value, _BACKBONE_DEFAULTS[name])
        if name == "name" and value in BACKBONES:
            self.backbone["image_size"] = BACKBONES[value].default_size

    def set_network(self, network: str) -> None:
        if network not in (CUSTOM, TRANSFER):
            raise ValueError(f"network must be {CUSTOM!r} or {TRANSFER!r}, got {network!r}")
        self.network = network

    # -- the result ---------------------------------------------------------------------
    def to_config(self) -> RunConfig:
        """The RunConfig being edited, valid or not (analyze() it to find out)."""
        if self.network == TRANSFER:
            return RunConfig(backbone=BackboneSpec(**self.backbone), **self.settings)
        layers = tuple(LayerSpec(layer["kind"], dict(layer["params"])) for layer in self.layers)
        return RunConfig(layers=layers, preset=self.preset, **self.settings)


def coerce(value: Any, like: Any) -> Any:
    """`value` as the type of `like` when that is lossless (3.0 -> 3, "0.5" -> 0.5);
    otherwise `value` unchanged, so analysis reports it instead of it being lost."""
    if isinstance(like, bool):  # a checkbox gives a bool; anything else is left for analysis
        return value
    if isinstance(like, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value
        return int(number) if number.is_integer() else value
    if isinstance(like, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    if isinstance(like, str) and value is not None:
        return str(value)
    return value


# -- where an edit starts ------------------------------------------------------------------
def from_config(config: RunConfig) -> EditorState:
    """An editor state holding `config`. A transfer config starts with no custom layers; a
    custom one keeps the default backbone settings ready in case the person switches."""
    state = EditorState(preset=config.preset)
    state.settings = {name: getattr(config, name) for name in SETTINGS}
    for spec in config.layers:  # kept as they are, unknown kinds too, so analysis can name them
        state.layers.append({"uid": state.next_uid, "kind": spec.kind, "params": dict(spec.params)})
        state.next_uid += 1
    if config.backbone is not None:
        state.network = TRANSFER
        state.backbone = dataclasses.asdict(config.backbone)
    return state


def from_preset(name: str) -> EditorState:
    """A preset (lsc_core.config.PRESETS) with its own hyperparameters (the study's: the defaults)."""
    return from_config(preset(name))


def preset_card(name: str) -> str:
    """What the Build page says about a preset (Markdown): what it is, its parameter counts
    and what it was measured to reach, with the machine ("not measured yet" until benchmarked)."""
    counts = {mode: analyze(preset(name, label_mode=mode)).total_params for mode in LABEL_MODES}
    return (f"{PRESETS[name].about}  \n**Parameters:** {counts['coarse']:,} coarse, {counts['fine']:,} fine.  \n"
            f"**Measured:** {measured_text(name)}")


def from_run_config(data: dict[str, Any]) -> EditorState:
    """An earlier run's config dict (as stored) to edit again; the clone gets a fresh default
    name rather than repeating the original's. ConfigError if the dict is not a config."""
    if not isinstance(data, dict):
        raise ConfigError("the run's config is not a JSON object")
    return from_config(RunConfig.from_dict(data).replace(name=None))


def to_draft(state: EditorState) -> str:
    """The state as JSON text, to be kept across reloads (the widget token is left out: a
    restored draft gets fresh widgets)."""
    data = dataclasses.asdict(state)
    del data["token"]
    return json.dumps(data, sort_keys=True, default=str)


def from_draft(text: str) -> EditorState:
    """An editor state from to_draft's text. ConfigError when it cannot be read (e.g. a draft
    from another version), so the page can start from a preset instead."""
    try:
        data = json.loads(text)
        state = EditorState(**{f.name: data[f.name] for f in dataclasses.fields(EditorState) if f.name != "token"})
        for name, value in state.settings.items():  # settings that are objects (e.g. speed) come back as dicts
            default = _SETTING_DEFAULTS.get(name)
            if dataclasses.is_dataclass(default) and isinstance(value, dict):
                state.settings[name] = type(default)(**value)
            elif isinstance(default, tuple) and isinstance(value, list):  # e.g. augment: JSON has no tuples
                state.settings[name] = tuple(value)
        state.to_config()  # fields this version does not know fail here
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"the saved draft cannot be read: {exc}") from None
    return state


def scratch() -> EditorState:
    """An empty custom network with the default hyperparameters."""
    return EditorState()


# -- what the page shows -------------------------------------------------------------------
def shape_text(shape: tuple[int, ...] | None) -> str:
    """(16, 16, 64) -> "16x16x64"; "-" for a shape that cannot be computed."""
    return "x".join(str(side) for side in shape) if shape else "-"


def summary_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per layer (the head included): position, layer (marked where it has a problem), output, params."""
    rows = [{"position": row.position,
             "layer": (PROBLEM_MARK if analysis.errors_at(row.position) else "") + row.label,
             "output": shape_text(row.output_shape), "params": row.params}
            for row in analysis.rows]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def errors_for(analysis: Analysis, field_name: str) -> list[str]:
    """Messages about one setting that no layer position owns (e.g. 'learning_rate', 'image_size')."""
    return [str(e) for e in analysis.errors if e.position is None and e.field_name == field_name]


def general_errors(analysis: Analysis, shown_fields: tuple[str, ...]) -> list[str]:
    """Problems not tied to a layer position nor to one of `shown_fields` (shown apart)."""
    return [str(e) for e in analysis.errors if e.position is None and e.field_name not in shown_fields]


def default_run_name(config: RunConfig) -> str:
    """The name the store gives a run launched without one: preset or backbone plus its id."""
    return f"{config.replace(name=None).display_name()}-<run id>"


def image_size_range(backbone_name: str) -> tuple[int, int]:
    """Smallest and largest image side the form accepts for a backbone."""
    return BACKBONES[backbone_name].min_size, MAX_IMAGE_SIZE


# -- the training recipe: what the form draws before launch -----------------------------------
RECIPE_FIELDS = ("schedule", "warmup_epochs", "decay_every", "decay_factor", "weight_decay", "nesterov",
                 "label_smoothing", "early_stopping", "plateau_patience", "plateau_factor", "augment", "tta")
PREVIEW_IMAGES = 16  # training images in the augmentation preview grid


def schedule_frame(config: RunConfig) -> pd.DataFrame | None:
    """The learning rate over the run, for drawing (epoch 1-based and fractional, learning_rate,
    and `starts_epoch` marking the rate each epoch starts with, the one its row records);
    None when the schedule settings are not usable."""
    from . import schedules
    from .config import recipe_problems

    schedule_fields = {"schedule", "warmup_epochs", "decay_every", "decay_factor"}
    problems = [name for name, _ in recipe_problems(config) if name in schedule_fields]
    if problems or not isinstance(config.epochs, int) or config.epochs < 1 or \
            not isinstance(config.learning_rate, (int, float)) or not isinstance(config.batch_size, int) \
            or config.batch_size < 1:
        return None
    points = schedules.schedule_curve(config)
    starts = {float(epoch) for epoch in range(1, config.epochs + 1)}
    return pd.DataFrame([{"epoch": epoch, "learning_rate": rate, "starts_epoch": epoch in starts}
                         for epoch, rate in points], columns=["epoch", "learning_rate", "starts_epoch"])


def preview_images(data, ops, seed: int = 0, count: int = PREVIEW_IMAGES):
    """(originals, augmented): `count` training images of different classes, uint8, and the same
    images under the augmentations `ops` as one training batch would see them (seeded)."""
    from .augment import preview

    labels = data.labels("train", "fine")
    # The first image of each of the first `count` classes: a varied, stable grid.
    _, first = np.unique(labels, return_index=True)
    originals = data.x_train[np.sort(first)[:count]]
    return originals, preview(originals, ops, seed)
