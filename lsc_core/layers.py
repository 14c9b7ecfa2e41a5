"""The layer kinds of a custom network: one registry entry per kind.

An entry (`LayerKind`) is everything the rest of the code needs to know about a kind:
its parameters and their defaults, its output shape and parameter count (pure Python,
no TensorFlow import, matching Keras exactly: a test checks it), its Keras builder,
the parameter a search varies, and a short label. Parameters (`ParamSpec`) are shared
between kinds ("filters" means the same everywhere) and carry both their checks and how
the Build page's editor shows them. Adding a kind is one entry in `KINDS` plus its tests.

Problems are raised as `LayerProblem` (message and parameter); `config.analyze` adds
the layer's position and turns them into ConfigErrors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

ACTIVATIONS = ("relu", "elu", "gelu", "selu", "swish", "tanh", "sigmoid", "linear")
PADDINGS = ("same", "valid")

Shape = tuple[int, ...]  # (height, width, channels) for a feature map, (features,) once flat


class LayerProblem(ValueError):
    """Something impossible about one layer; `field_name` is the parameter it concerns, if any."""

    def __init__(self, message: str, field_name: str | None = None):
        super().__init__(message)
        self.field_name = field_name


# -- parameters ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """One layer parameter: how it is checked and how the editor shows it.

    `kind` is "int" (a whole number from `minimum` to `maximum`, the size limit that
    keeps a network within memory), "float" (a number in
    [`minimum`, `maximum`), or `maximum` included when `maximum_included`) or "choice"
    (one of `options`). `step` and `format` are the editor's number-input settings.
    """

    label: str
    kind: str
    help: str = ""
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    maximum_included: bool = False
    step: float | None = None
    format: str | None = None

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with `value` for this parameter, or None."""
        if self.kind == "choice":
            return None if value in self.options else \
                f"{name} must be one of {', '.join(self.options)}, got {_show(value)}"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind == "int":
            if not (number and isinstance(value, int) and value >= self.minimum):
                return f"{name} must be a whole number of at least {self.minimum:g}, got {_show(value)}"
            if self.maximum is not None and value > self.maximum:
                return f"{name} {value:,} is over the limit of {self.maximum:,}"
            return None
        too_high = number and self.maximum is not None and (
            value > self.maximum if self.maximum_included else value >= self.maximum)
        if not number or value < self.minimum or too_high or math.isnan(value):
            closing = "]" if self.maximum_included else ")"
            return f"{name} must be in [{self.minimum:g}, {self.maximum:g}{closing}, got {_show(value)}"
        return None


PARAMS: dict[str, ParamSpec] = {  # in the order a person reads a layer
    # Maximums: a 32x32x4096 feature map is 16 MB per image; kernel, stride and pool sizes
    # beyond the 32x32 image mean nothing.
    "filters": ParamSpec("Filters", "int", "output channels of the convolution", minimum=1, maximum=4096),
    "units": ParamSpec("Units", "int", "neurons of the dense layer", minimum=1, maximum=65_536),
    "kernel_size": ParamSpec("Kernel", "int", "side of the square kernel, in pixels", minimum=1, maximum=32),
    "strides": ParamSpec("Strides", "int", "step of the kernel; 2 halves the feature map", minimum=1, maximum=32),
    "pool_size": ParamSpec("Pool size", "int", "side of the pooling window; divides the feature map", minimum=1,
                           maximum=32),
    "rate": ParamSpec("Rate", "float", "share of inputs dropped while training, in [0, 1)", minimum=0.0,
                      maximum=1.0, step=0.05, format="%.2f"),
    "padding": ParamSpec("Padding", "choice", "'same' keeps the size, 'valid' shrinks it", PADDINGS),
    "activation": ParamSpec("Activation", "choice", "", ACTIVATIONS),
    # Keras's L2 adds l2 x (sum of squared kernel weights) to the loss, so its gradient is
    # 2 x l2 x w: l2 = 2.5e-4 here is the "weight decay 5e-4" of SGD papers.
    "l2": ParamSpec("L2", "float", "weight decay: l2 x sum of squared kernel weights is added to the loss; "
                    "0 for none", minimum=0.0, maximum=1.0, step=1e-4, format="%g"),
    "factor": ParamSpec("Factor", "float", "every value is multiplied by it (e.g. 0.125 to soften the logits)",
                        minimum=0.0, maximum=1000.0, maximum_included=True, step=0.125, format="%g"),
}


def _show(value: Any, limit: int = 40) -> str:
    """repr() cut to `limit` characters: a message stays one short line whatever was sent."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- shapes and parameter counts ------------------------------------------------------------
def _conv_output(params: dict, shape: Shape) -> Shape:
    """Output shape of a square-kernel convolution (or pooling) over a feature map."""
    h, w, _ = shape
    k, s = params["kernel_size"], params["strides"]
    if params["padding"] == "same":
        out_h, out_w = math.ceil(h / s), math.ceil(w / s)
    else:
        out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
    if out_h < 1 or out_w < 1:
        raise LayerProblem(f"a {k}x{k} kernel with 'valid' padding does not fit the {h}x{w} feature map",
                           "kernel_size")
    return out_h, out_w, params["filters"]


def _conv2d(params: dict, shape: Shape) -> tuple[Shape, int]:
    k, c, f = params["kernel_size"], shape[2], params["filters"]
    return _conv_output(params, shape), k * k * c * f + f  # kernel + bias


def _conv_bn(params: dict, shape: Shape) -> tuple[Shape, int]:
    k, c, f = params["kernel_size"], shape[2], params["filters"]
    return _conv_output(params, shape), k * k * c * f + 4 * f  # kernel (no bias) + batch norm


def _separable_conv2d(params: dict, shape: Shape) -> tuple[Shape, int]:
    k, c, f = params["kernel_size"], shape[2], params["filters"]
    return _conv_output(params, shape), k * k * c + c * f + f  # depthwise + pointwise kernels + bias


def _needs_projection(params: dict, shape: Shape) -> bool:
    """A residual block adds its input to its output: through a 1x1 conv when the shape changes."""
    return params["strides"] != 1 or shape[2] != params["filters"]


def _residual(params: dict, shape: Shape) -> tuple[Shape, int]:
    c, f = shape[2], params["filters"]
    out = _conv_output({**params, "kernel_size": 3, "padding": "same"}, shape)
    count = 9 * c * f + 4 * f + 9 * f * f + 4 * f  # two 3x3 convs without bias, each with batch norm
    if _needs_projection(params, shape):
        count += c * f + 4 * f  # 1x1 projection without bias, with batch norm
    return out, count


def _pool(params: dict, shape: Shape) -> tuple[Shape, int]:
    h, w, c = shape
    size = params["pool_size"]
    if h // size < 1 or w // size < 1:
        raise LayerProblem(f"{size}x{size} pooling makes the {h}x{w} feature map empty; "
                           "remove a pooling layer or use a smaller pool", "pool_size")
    return (h // size, w // size, c), 0


def _dense(params: dict, shape: Shape) -> tuple[Shape, int]:
    return (params["units"],), shape[0] * params["units"] + params["units"]  # weights + bias


def _same_shape(params: dict, shape: Shape) -> tuple[Shape, int]:
    return shape, 0


def _batchnorm(params: dict, shape: Shape) -> tuple[Shape, int]:
    return shape, 4 * shape[-1]  # gamma, beta (trained) + moving mean, variance


# -- Keras builders (keras imported only when a model is built) -----------------------------
def _build_conv2d(p: dict, name: str, x):
    import keras
    return keras.layers.Conv2D(p["filters"], p["kernel_size"], strides=p["strides"], padding=p["padding"],
                               activation=p["activation"], kernel_regularizer=_kernel_regularizer(p), name=name)(x)


def _kernel_regularizer(p: dict):
    """L2 on the kernel, or None (no regularizer at all: the study's networks stay as they were)."""
    import keras
    return keras.regularizers.L2(p["l2"]) if p.get("l2") else None


# Batch norm of the conv_bn and residual kinds: moving statistics follow the last ~10
# batches (Keras's default 0.99 follows ~100), so that validation after a short run or the
# first epoch of a long one uses statistics of the weights as they are now.
BN_MOMENTUM = 0.9


def _build_conv_bn(p: dict, name: str, x):
    import keras
    x = keras.layers.Conv2D(p["filters"], p["kernel_size"], strides=p["strides"], padding=p["padding"],
                            use_bias=False, kernel_regularizer=_kernel_regularizer(p), name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.Activation(p["activation"], name=f"{name}_act")(x)


def _build_separable_conv2d(p: dict, name: str, x):
    import keras
    return keras.layers.SeparableConv2D(p["filters"], p["kernel_size"], strides=p["strides"], padding=p["padding"],
                                        activation=p["activation"], depthwise_regularizer=_kernel_regularizer(p),
                                        pointwise_regularizer=_kernel_regularizer(p), name=name)(x)


def _build_residual(p: dict, name: str, x):
    """The basic ResNet block: conv-BN-act, conv-BN, plus the input (projected when its
    shape changes), then the activation. Convs carry no bias: batch norm's beta is one."""
    import keras

    def conv(inputs, kernel: int, strides: int, part: str):
        inputs = keras.layers.Conv2D(p["filters"], kernel, strides=strides, padding="same", use_bias=False,
                                     kernel_regularizer=_kernel_regularizer(p), name=f"{name}_{part}")(inputs)
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_{part}_bn")(inputs)

    shortcut = x
    if _needs_projection(p, tuple(x.shape[1:])):
        shortcut = conv(x, 1, p["strides"], "projection")
    y = conv(x, 3, p["strides"], "conv1")
    y = keras.layers.Activation(p["activation"], name=f"{name}_act1")(y)
    y = conv(y, 3, 1, "conv2")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation(p["activation"], name=f"{name}_act2")(y)


def _build_global_max_pool(p: dict, name: str, x):
    import keras
    return keras.layers.GlobalMaxPooling2D(name=name)(x)


def _build_scale(p: dict, name: str, x):
    import keras
    return keras.layers.Rescaling(p["factor"], name=name)(x)


def _build_maxpool(p: dict, name: str, x):
    import keras
    return keras.layers.MaxPooling2D(p["pool_size"], name=name)(x)


def _build_avgpool(p: dict, name: str, x):
    import keras
    return keras.layers.AveragePooling2D(p["pool_size"], name=name)(x)


def _build_dropout(p: dict, name: str, x):
    import keras
    return keras.layers.Dropout(p["rate"], name=name)(x)


def _build_flatten(p: dict, name: str, x):
    import keras
    return keras.layers.Flatten(name=name)(x)


def _build_dense(p: dict, name: str, x):
    import keras
    return keras.layers.Dense(p["units"], activation=p["activation"], kernel_regularizer=_kernel_regularizer(p),
                              name=name)(x)


def _build_batchnorm(p: dict, name: str, x):
    import keras
    return keras.layers.BatchNormalization(name=name)(x)


def _build_global_avg_pool(p: dict, name: str, x):
    import keras
    return keras.layers.GlobalAveragePooling2D(name=name)(x)


# -- the registry -------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchDimension:
    """What a search varies in a layer of this kind: one parameter, offered `options`.

    `spread`: the form preselects half, the same and double the layer's value (sizes);
    otherwise only the layer's own value (rates). `prefix` names searched parameters,
    e.g. "conv" -> conv1_filters, conv2_filters.
    """

    param: str
    options: tuple
    prefix: str
    spread: bool = True


@dataclass(frozen=True)
class LayerKind:
    """One layer kind. `input` is "map" (needs a feature map), "flat" (needs flat
    features) or "any"; `output(params, shape)` gives (output shape, parameter count)
    or raises LayerProblem; `build(params, name, tensor)` applies the Keras layer(s),
    each named `name` or `name_<part>`; `label(params)` is a short human description."""

    name: str
    defaults: dict[str, Any]
    output: Callable[[dict, Shape], tuple[Shape, int]]
    build: Callable[[dict, str, Any], Any]
    input: str = "any"
    label: Callable[[dict], str] | None = None
    search: SearchDimension | None = None
    about: str = ""  # one line for the editor's "Add a layer" list

    def describe(self, params: dict) -> str:
        return self.label(params) if self.label is not None else self.name


def _conv_label(p: dict) -> str:
    return f"conv2d {p['filters']} {p['kernel_size']}x{p['kernel_size']} {p['activation']}"


def _conv_label(kind: str) -> Callable[[dict], str]:
    def label(p: dict) -> str:
        text = f"{kind} {p['filters']} {p['kernel_size']}x{p['kernel_size']}"
        text += f" /{p['strides']}" if p["strides"] != 1 else ""
        return text + f" {p['activation']}" + _l2_label(p)
    return label


def _l2_label(p: dict) -> str:
    return f" l2 {p['l2']:g}" if isinstance(p.get("l2"), (int, float)) and p["l2"] else ""


_CONV = {"filters": 32, "kernel_size": 3, "activation": "relu", "padding": "same", "strides": 1, "l2": 0.0}

KINDS: dict[str, LayerKind] = {kind.name: kind for kind in (
    LayerKind("conv2d", dict(_CONV), _conv2d, _build_conv2d, input="map", label=_conv_label("conv2d"),
              search=SearchDimension("filters", (8, 16, 32, 64, 128, 256), "conv"),
              about="convolution with bias and activation"),
    LayerKind("conv_bn", {**_CONV, "filters": 64}, _conv_bn, _build_conv_bn, input="map",
              label=_conv_label("conv_bn"),
              search=SearchDimension("filters", (16, 32, 64, 128, 256, 512), "convbn"),
              about="convolution, batch norm, activation"),
    LayerKind("separable_conv2d", {**_CONV, "filters": 64}, _separable_conv2d, _build_separable_conv2d,
              input="map", label=_conv_label("separable_conv2d"),
              search=SearchDimension("filters", (16, 32, 64, 128, 256, 512), "sepconv"),
              about="depthwise then 1x1 convolution: fewer weights"),
    LayerKind("residual", {"filters": 64, "strides": 1, "activation": "relu", "l2": 0.0}, _residual,
              _build_residual, input="map",
              label=lambda p: f"residual {p['filters']}" + (f" /{p['strides']}" if p["strides"] != 1 else "")
              + f" {p['activation']}" + _l2_label(p),
              search=SearchDimension("filters", (16, 32, 64, 128, 256, 512), "residual"),
              about="two 3x3 conv-BN plus a shortcut (1x1 when the shape changes)"),
    LayerKind("maxpool2d", {"pool_size": 2}, _pool, _build_maxpool, input="map",
              label=lambda p: f"maxpool2d {p['pool_size']}x{p['pool_size']}",
              about="largest value per window"),
    LayerKind("avgpool2d", {"pool_size": 2}, _pool, _build_avgpool, input="map",
              label=lambda p: f"avgpool2d {p['pool_size']}x{p['pool_size']}",
              about="mean value per window"),
    LayerKind("dropout", {"rate": 0.25}, _same_shape, _build_dropout, label=lambda p: f"dropout {p['rate']}",
              search=SearchDimension("rate", (0.0, 0.1, 0.25, 0.4, 0.5), "dropout", spread=False),
              about="drops a share of inputs while training"),
    LayerKind("flatten", {}, lambda p, shape: ((math.prod(shape),), 0), _build_flatten,
              about="feature map to one vector"),
    LayerKind("dense", {"units": 128, "activation": "relu", "l2": 0.0}, _dense, _build_dense, input="flat",
              label=lambda p: f"dense {p['units']} {p['activation']}" + _l2_label(p),
              search=SearchDimension("units", (32, 64, 128, 256, 512), "dense"),
              about="fully connected"),
    LayerKind("batchnorm", {}, _batchnorm, _build_batchnorm,
              about="batch normalisation"),
    LayerKind("global_avg_pool", {}, lambda p, shape: ((shape[2],), 0), _build_global_avg_pool, input="map",
              about="mean of each channel"),
    LayerKind("global_max_pool", {}, lambda p, shape: ((shape[2],), 0), _build_global_max_pool, input="map",
              about="largest value of each channel"),
    LayerKind("scale", {"factor": 0.125}, _same_shape, _build_scale, label=lambda p: f"scale x{p['factor']:g}"
              if isinstance(p.get("factor"), (int, float)) else "scale",
              about="multiplies by a constant"),
)}


def get(kind: str) -> LayerKind:
    """The registry entry of `kind`; LayerProblem naming the known kinds otherwise."""
    if kind not in KINDS:
        raise LayerProblem(f"unknown layer kind {_show(kind)}; choose from {', '.join(KINDS)}", "kind")
    return KINDS[kind]


def defaults(kind: str) -> dict[str, Any]:
    """A fresh copy of `kind`'s default parameters ({} for an unknown kind)."""
    return dict(KINDS[kind].defaults) if kind in KINDS else {}


def param_names(kind: str) -> list[str]:
    """`kind`'s parameters in the order the editor shows them."""
    own = KINDS[kind].defaults if kind in KINDS else {}
    return [name for name in PARAMS if name in own]


def check_params(kind: str, params: dict) -> list[LayerProblem]:
    """Problems with one layer's own parameters, independent of its input shape."""
    entry = get(kind)
    problems = []
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        problems.append(LayerProblem(f"unknown parameter(s) {', '.join(name[:40] for name in unknown)}", unknown[0]))
    for name in param_names(kind):
        message = PARAMS[name].problem(name, params.get(name))
        if message:
            problems.append(LayerProblem(message, name))
    return problems


def output(kind: str, params: dict, shape: Shape) -> tuple[Shape, int]:
    """Output shape and parameter count of a layer with valid parameters on `shape`.

    Raises LayerProblem when the layer cannot take that input."""
    entry = get(kind)
    if entry.input == "map" and len(shape) != 3:
        raise LayerProblem(f"needs a feature map, but its input is already flat {shape}; "
                           "move it before flatten/dense")
    if entry.input == "flat" and len(shape) == 3:
        raise LayerProblem(f"needs flat features, but its input is an unflattened {shape[0]}x{shape[1]}x{shape[2]} feature map; "
                           "add flatten or global_avg_pool before it")
    return entry.output(params, shape)


def build(kind: str, params: dict, name: str, x):
    """Apply the Keras layer(s) of one layer spec to tensor `x`; returns the output tensor."""
    return get(kind).build(params, name, x)


def searchable(kind: str) -> SearchDimension | None:
    """What a search can vary in a layer of `kind` (None: nothing)."""
    return KINDS[kind].search if kind in KINDS else None
