"""Why a network answered as it did: Grad-CAM heatmaps and their overlays on images.

Grad-CAM (Selvaraju et al., 2017): take the network's last convolutional feature map
A (h x w x k channels), the gradient of one class's score with respect to it, average
that gradient over the map to get one weight per channel, and keep the positive part
of the weighted sum of channels: relu(sum_k w_k A_k). Where it is high, the evidence
for that class sits.

Which feature map: the last layer whose output is 4-D (batch, height, width, channels)
and that comes at or after a convolution (a layer with a rank-4 kernel), found from
the shapes, not from a list of layer classes, so conv, separable conv and residual
blocks (an Add of two maps) all qualify. A pooling layer right at the end is passed
over for the map before it: pooling only halves the heatmap's resolution. A transfer
model's backbone is a nested model: its own last such layer is used. A network with
no convolution has no map and `find_feature_layer` says so (NoFeatureMap).

The class score is the logit (the head's input times its kernel plus bias), not the
softmax probability: the gradient of a probability near 1 vanishes.

The overlay is pure numpy/Pillow: the heat is upscaled (bilinear), coloured with a
jet-like map and alpha-blended in proportion to the heat, so cold regions show the
image as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .runtime import import_tensorflow

OVERLAY_ALPHA = 0.6  # opacity of the colour where the heat is highest; 0 heat leaves the image as it is
# Jet-like colour map anchors (position in [0, 1] -> RGB): blue (cold) through cyan,
# yellow to red (hot), the colours Grad-CAM figures are read with.
_COLOUR_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array([[0, 0, 160], [0, 160, 255], [80, 255, 120], [255, 220, 0], [220, 0, 0]], dtype=np.float64)


class NoFeatureMap(ValueError):
    """The network has no convolutional feature map to explain (one line for the person)."""


@dataclass(frozen=True)
class FeatureLayer:
    """Where the explained feature map comes from: a layer of the model, or of its nested backbone."""

    name: str  # the layer producing the map
    backbone: str | None  # the nested model holding it (transfer models), else None
    shape: tuple[int, int, int]  # (height, width, channels) of the map

    def describe(self) -> str:
        where = f"{self.backbone}/{self.name}" if self.backbone else self.name
        return f"{where} ({self.shape[0]}x{self.shape[1]}x{self.shape[2]})"


# -- finding the feature map -------------------------------------------------------------------
def _is_conv(layer) -> bool:
    """A layer with a rank-4 kernel: Conv2D, DepthwiseConv2D, SeparableConv2D and the like."""
    return any(len(weight.shape) == 4 for weight in layer.weights) and not hasattr(layer, "layers")


def _output_rank(layer) -> int:
    return len(layer.output.shape)


def _is_pooling(layer) -> bool:
    import keras

    return isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))


def _last_map_in(layers) -> str | None:
    """Name of the last 4-D layer at or after the first convolution in `layers`, trailing pooling skipped."""
    seen_conv, candidates = False, []
    for layer in layers:
        seen_conv = seen_conv or _is_conv(layer)
        if seen_conv and _output_rank(layer) == 4:
            candidates.append(layer)
    while len(candidates) > 1 and _is_pooling(candidates[-1]):
        candidates.pop()
    return candidates[-1].name if candidates else None


def _nested_models(model) -> list:
    return [layer for layer in model.layers if hasattr(layer, "layers") and layer.layers]


def find_feature_layer(model) -> FeatureLayer:
    """The feature map Grad-CAM explains (see the module notes); NoFeatureMap if there is none."""
    import_tensorflow()
    name = _last_map_in(model.layers)
    if name is not None:
        return FeatureLayer(name, None, tuple(int(d) for d in model.get_layer(name).output.shape[1:]))
    for nested in reversed(_nested_models(model)):
        inner = _last_map_in(nested.layers)
        if inner is not None:
            shape = nested.get_layer(inner).output.shape[1:]
            return FeatureLayer(inner, nested.name, tuple(int(d) for d in shape))
    raise NoFeatureMap(f"the network {model.name!r} has no convolutional layer, so there is no feature map "
                       "to explain (Grad-CAM needs one)")


# -- the gradient model --------------------------------------------------------------------------
def _head(model):
    """The model's last layer, if it is a Dense whose logits can be recomputed from its input."""
    last = model.layers[-1]
    return last if hasattr(last, "kernel") and hasattr(last, "bias") and len(last.kernel.shape) == 2 else None


def feature_model(model, where: FeatureLayer):
    """A keras.Model: pixels -> (feature map, head input or output).

    A plain functional model is cut at the layer directly. A transfer model holds its
    map inside the nested backbone; it is a chain of layers (backbones.build_transfer_model),
    so it is rebuilt as the same chain with the backbone answering (map, pooled output).
    """
    keras = import_tensorflow()
    head = _head(model)
    if where.backbone is None:
        final = head.input if head is not None else model.output
        return keras.Model(model.inputs, [model.get_layer(where.name).output, final])
    backbone = model.get_layer(where.backbone)
    split = keras.Model(backbone.inputs, [backbone.get_layer(where.name).output, backbone.output])
    inputs = keras.Input(shape=model.inputs[0].shape[1:])
    x, feature_map, final = inputs, None, None
    for layer in model.layers[1:]:  # layers[0] is the InputLayer
        if layer is head:
            final = x
            break
        if layer is backbone:
            feature_map, x = split(x, training=False)
        else:
            x = layer(x, training=False) if _takes_training(layer) else layer(x)
    return keras.Model(inputs, [feature_map, final if final is not None else x])


def _takes_training(layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters


# -- Grad-CAM ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Explanation:
    """Heatmaps of a batch: `heat[i]` is in [0, 1] over the feature map's (height, width)."""

    heat: np.ndarray  # (N, h, w) float32, each map divided by its maximum (all 0 where nothing is positive)
    classes: np.ndarray  # (N,) the class each map explains
    probabilities: np.ndarray  # (N, C) the model's output for the batch
    layer: FeatureLayer


class Explainer:
    """Grad-CAM for one model: finds its feature map once, then explains batches.

    Raises NoFeatureMap on construction for a network without a convolution.
    """

    def __init__(self, model):
        self.model = model
        self.layer = find_feature_layer(model)
        self._cut = feature_model(model, self.layer)
        self._head = _head(model)

    def explain(self, images: np.ndarray, classes=None) -> Explanation:
        """Heatmaps for uint8 or float 0..255 images (N, 32, 32, 3); `classes` (N,) or None for
        each image's top predicted class."""
        import tensorflow as tf

        pixels = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
        with tf.GradientTape() as tape:
            feature_map, final = self._cut(pixels, training=False)
            tape.watch(feature_map)
            logits = final @ self._head.kernel + self._head.bias if self._head is not None else final
            probabilities = self._head.activation(logits) if self._head is not None else final
            chosen = (np.argmax(probabilities.numpy(), axis=1) if classes is None
                      else np.asarray(classes, dtype=np.int64).reshape(-1))
            # Images are independent (inference mode): the gradient of the sum is each image's own.
            score = tf.reduce_sum(logits * tf.one_hot(chosen, int(logits.shape[-1]), dtype=logits.dtype))
        gradients = tape.gradient(score, feature_map)
        heat = grad_cam(np.asarray(feature_map), np.asarray(gradients))
        return Explanation(heat, chosen, np.asarray(probabilities, dtype=np.float32), self.layer)


def grad_cam(feature_map: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """relu(sum_k mean_hw(dS/dA_k) * A_k) per image, scaled to a maximum of 1 (N, h, w) float32.

    `feature_map` and `gradients` are (N, h, w, k). A map with no positive evidence stays all 0.
    """
    weights = gradients.mean(axis=(1, 2), keepdims=True)  # (N, 1, 1, k): one weight per channel
    cam = np.maximum((weights * feature_map).sum(axis=-1), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype(np.float32)


# -- overlays (numpy and Pillow only) -----------------------------------------------------------
def colourise(heat: np.ndarray) -> np.ndarray:
    """Heat in [0, 1] (H, W) -> RGB uint8 (H, W, 3) on the jet-like map."""
    flat = np.clip(heat, 0.0, 1.0).ravel()
    channels = [np.interp(flat, _COLOUR_STOPS, _COLOURS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).reshape(*heat.shape, 3).round().astype(np.uint8)


def upscale_heat(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """A (h, w) heatmap resized to (height, width) with bilinear smoothing, values kept in [0, 1]."""
    from PIL import Image

    image = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F")
    return np.clip(np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)), 0.0, 1.0)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """An RGB uint8 image (H, W, 3) with the heatmap blended over it.

    The colour's opacity grows with the heat (alpha at the hottest point, none where
    the heat is 0), so the image stays readable where the network did not look.
    """
    image = np.asarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    heat = upscale_heat(heat, width, height)
    opacity = (alpha * heat)[..., None]
    blended = (1.0 - opacity) * image + opacity * colourise(heat)
    return blended.round().clip(0, 255).astype(np.uint8)


def centre_square(image: np.ndarray) -> np.ndarray:
    """The centred square of an (H, W, 3) image: the part a prepared upload's network input shows."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]



def explainer_for_run(store, run_id: int) -> Explainer:
    """The Explainer of a run's saved best model; ValueError (the model cannot be loaded, or
    NoFeatureMap) with a one-line reason."""
    from .predict import load_run_model

    _, model = load_run_model(store, run_id)
    return Explainer(model)


# -- uploads: what the Predict page and the command line show ------------------------------------
@dataclass(frozen=True, eq=False)
class UploadExplanation:
    """One image's heatmap for one class, overlaid on what the network saw and on the upload."""

    class_index: int
    class_name: str
    probability: float  # the model's probability of that class
    probabilities: np.ndarray  # (C,) the model's probabilities of every class for this image
    on_input: np.ndarray  # (192, 192, 3) uint8: the 32x32 input enlarged by whole pixels, heat over it
    on_upload: np.ndarray  # the upload's centred square (the part the network sees), heat over it
    layer: FeatureLayer


INPUT_VIEW_SCALE = 6  # the 32x32 input shown 6x (192 px), as predict.network_view
GALLERY_SCALE = 4  # test images in galleries: 32x32 enlarged to 128 px before the heat goes over them


def explain_upload(explainer: Explainer, image, label_mode: str, class_index: int | None = None) -> UploadExplanation:
    """Grad-CAM of a prepared upload (predict.PreparedImage) for `class_index`, or its top class."""
    from .evaluate import NAMES
    from .predict import network_view

    result = explainer.explain(image.pixels[None], None if class_index is None else [class_index])
    heat, chosen = result.heat[0], int(result.classes[0])
    return UploadExplanation(
        class_index=chosen, class_name=NAMES[label_mode][chosen],
        probability=float(result.probabilities[0, chosen]), probabilities=result.probabilities[0],
        on_input=overlay(network_view(image.pixels, INPUT_VIEW_SCALE), heat),
        on_upload=overlay(centre_square(np.asarray(image.preview)), heat), layer=result.layer)


def class_choices(explained: UploadExplanation, label_mode: str) -> dict[int, str]:
    """Every class as a choice for the picker, most probable first: {class index: 'name (12.3%)'}."""
    from .evaluate import NAMES

    order = np.argsort(-explained.probabilities, kind="stable")
    return {int(c): f"{NAMES[label_mode][c]} ({float(explained.probabilities[c]):.1%})" for c in order}


def save_png(pixels: np.ndarray, path) -> None:
    """Write an RGB uint8 array as a PNG file."""
    from PIL import Image

    Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGB").save(path, format="PNG")


def explain_paths(out, names: list[str]) -> list:
    """Where `predict --explain OUT.png` writes each image's overlay.

    One image: OUT.png itself. Several: OUT-<image file stem>.png beside it (OUT-photo.png,
    OUT-scan.png), with -2, -3 added where two images share a stem.
    """
    from pathlib import Path

    out = Path(out)
    if len(names) == 1:
        return [out]
    paths, used = [], set()
    for name in names:
        stem, number = f"{out.stem}-{Path(name).stem}", 1
        candidate = stem
        while candidate in used:
            number += 1
            candidate = f"{stem}-{number}"
        used.add(candidate)
        paths.append(out.with_name(f"{candidate}{out.suffix or '.png'}"))
    return paths


# -- galleries of test images: what the network looked at for the true and the predicted class ------
def explain_gallery(explainer: Explainer, result, images: np.ndarray, indices) -> tuple[list[np.ndarray], list[str]]:
    """For each test image at `indices` (of an evaluate.Result): the image, then Grad-CAM for its
    true class, then for the class predicted, with captions; a flat list of triples for one gallery."""
    from .predict import network_view

    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return [], []
    batch = images[indices]
    for_true = explainer.explain(batch, result.y_true[indices]).heat
    for_predicted = explainer.explain(batch, result.y_pred[indices]).heat
    pictures, captions = [], []
    for position, index in enumerate(indices):
        view = network_view(batch[position], GALLERY_SCALE)
        true, predicted = result.names[result.y_true[index]], result.names[result.y_pred[index]]
        pictures += [view, overlay(view, for_true[position]), overlay(view, for_predicted[position])]
        captions += [f"{true} → {predicted} ({float(result.probabilities[index, result.y_pred[index]]):.0%})",
                     f"looked at for {true} (true)", f"looked at for {predicted} (predicted)"]
    return pictures, captions
