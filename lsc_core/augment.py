"""The augmentation menu: seeded, on-the-fly changes to a batch of training images.

Every operation is a function on a whole batch, `op(images, labels, seed)`, with images
float32 (B, 32, 32, 3) in 0..255 and `seed` a stateless seed pair (shape [2] int): the
same seed gives the same batch, on any device, inside tf.data or inside a training
step. MixUp and CutMix also mix the labels, so they need one-hot labels (B, C); the
other operations pass the labels through. `apply` runs the chosen operations in the
menu's order. TensorFlow is imported only inside the operations, so the menu itself
(names, labels, parsing) is cheap to import for the dashboard's pages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import ConfigError

PAD = 4  # pixels of zero padding before the random 32x32 crop
MAX_ROTATION_DEG = 15.0  # "small rotation": uniform in +-15 degrees
ZOOM_RANGE = (0.9, 1.1)  # scale factor, uniform
JITTER = 0.2  # brightness, contrast and saturation factors uniform in 1 +- 0.2
CUTOUT_SIZE = 8  # px: DeVries & Taylor's square for CIFAR-100
# Cutout fills with CIFAR-100's mean colour (0..255): the models see raw pixels, and the
# mean is what a zero would be after the usual per-channel normalisation.
CUTOUT_FILL = (129.3, 124.1, 112.4)
MIXUP_ALPHA = 0.2  # the MixUp weight's concentration near 0 and 1 (the paper's alpha for CIFAR)
SIDE = 32


@dataclass(frozen=True)
class Augmentation:
    """One menu entry: a label for people and the batch function."""

    label: str
    apply: Callable
    mixes_labels: bool = False


def _tf():
    from .runtime import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    return tf


def _batch(images):
    return _tf().shape(images)[0]


# -- the operations -------------------------------------------------------------------------
def flip(images, labels, seed):
    """Each image mirrored left-right with probability 1/2."""
    tf = _tf()
    mirror = tf.random.stateless_uniform([_batch(images)], seed) < 0.5
    return tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images), labels


def crop(images, labels, seed):
    """Zero-pad by PAD pixels, then a random 32x32 crop of each image (shifts of up to +-4 px)."""
    tf = _tf()
    n = _batch(images)
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    offsets = tf.random.stateless_uniform([2, n], seed, maxval=2 * PAD + 1, dtype=tf.int32)
    side = tf.range(SIDE)
    rows = offsets[0][:, None] + side  # (n, 32): source rows of each image
    cols = offsets[1][:, None] + side
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1), labels


def _transform(images, angles, scales):
    """Rotate each image by `angles` (radians) and zoom by `scales` about its centre (bilinear,
    reflected edges). Output pixel (x, y) reads input (a0 x + a1 y + a2, b0 x + b1 y + b2)."""
    tf = _tf()
    cos, sin = tf.cos(angles) / scales, tf.sin(angles) / scales
    centre = (SIDE - 1) / 2.0
    zeros = tf.zeros_like(angles)
    transforms = tf.stack([cos, -sin, centre - cos * centre + sin * centre,
                           sin, cos, centre - sin * centre - cos * centre, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[SIDE, SIDE], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")


def rotate(images, labels, seed):
    """Each image rotated by a uniform angle in +-MAX_ROTATION_DEG."""
    tf = _tf()
    limit = math.radians(MAX_ROTATION_DEG)
    angles = tf.random.stateless_uniform([_batch(images)], seed, -limit, limit)
    return _transform(images, angles, tf.ones_like(angles)), labels


def zoom(images, labels, seed):
    """Each image zoomed in or out by a uniform factor in ZOOM_RANGE."""
    tf = _tf()
    scales = tf.random.stateless_uniform([_batch(images)], seed, *ZOOM_RANGE)
    return _transform(images, tf.zeros_like(scales), scales), labels


def jitter(images, labels, seed):
    """Colour jitter: each image's brightness, contrast and saturation scaled by factors in 1 +- JITTER."""
    tf = _tf()
    factors = tf.random.stateless_uniform([3, _batch(images), 1, 1, 1], seed, 1 - JITTER, 1 + JITTER)
    images = images * factors[0]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * factors[1] + mean
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - grey) * factors[2] + grey
    return tf.clip_by_value(images, 0.0, 255.0), labels


def _box_mask(n, seed, sides):
    """(n, 32, 32, 1) float masks, 1 inside a square of side `sides[i]` (px, float) centred at
    a uniform pixel of each image (the square may reach past the edge), 0 elsewhere."""
    tf = _tf()
    centres = tf.random.stateless_uniform([2, n], seed, 0, SIDE)
    grid = tf.range(SIDE, dtype=tf.float32) + 0.5
    half = sides[:, None] / 2.0
    inside_rows = tf.abs(grid[None, :] - centres[0][:, None]) < half  # (n, 32)
    inside_cols = tf.abs(grid[None, :] - centres[1][:, None]) < half
    mask = tf.logical_and(inside_rows[:, :, None], inside_cols[:, None, :])
    return tf.cast(mask, tf.float32)[..., None]


def cutout(images, labels, seed):
    """A CUTOUT_SIZE square of each image, at a random place, filled with the mean colour."""
    tf = _tf()
    n = _batch(images)
    mask = _box_mask(n, seed, tf.fill([n], float(CUTOUT_SIZE)))
    return images * (1 - mask) + mask * tf.constant(CUTOUT_FILL, tf.float32), labels


def _partner(tensor):
    """Each image's partner for mixing: the batch in reverse order (no extra randomness needed,
    since the batch is already shuffled)."""
    return _tf().reverse(tensor, axis=[0])


def _need_one_hot(labels, name: str) -> None:
    if labels.shape.rank != 2:
        raise ValueError(f"{name} mixes labels: it needs one-hot labels (B, C), got shape {labels.shape}")


def mixup(images, labels, seed):
    """MixUp: each image blended with its partner, labels blended alike. The weight is U^(1/alpha)
    (a Beta(alpha, 1) draw) or one minus it, with even odds: like the paper's Beta(alpha, alpha),
    most mixes stay close to one image, but it needs no gamma sampler, which XLA cannot compile."""
    tf = _tf()
    _need_one_hot(labels, "mixup")
    n = _batch(images)
    draws = tf.random.stateless_uniform([2, n], seed)
    near_zero = draws[0] ** (1.0 / MIXUP_ALPHA)
    weight = tf.where(draws[1] < 0.5, near_zero, 1.0 - near_zero)
    return (images * weight[:, None, None, None] + _partner(images) * (1 - weight[:, None, None, None]),
            labels * weight[:, None] + _partner(labels) * (1 - weight[:, None]))


def cutmix(images, labels, seed):
    """CutMix: a box of each image (area share uniform in 0..1) replaced by its partner's pixels;
    labels mixed by the share of pixels each image keeps."""
    tf = _tf()
    _need_one_hot(labels, "cutmix")
    n = _batch(images)
    area_seed, place_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    share = tf.random.stateless_uniform([n], area_seed)
    mask = _box_mask(n, place_seed, SIDE * tf.sqrt(share))
    kept = 1 - tf.reduce_mean(mask, axis=[1, 2, 3])  # the box may be clipped at the edge
    return (images * (1 - mask) + _partner(images) * mask,
            labels * kept[:, None] + _partner(labels) * (1 - kept[:, None]))


# In the order they are applied: geometry, colour, erasing, then mixing.
AUGMENTATIONS: dict[str, Augmentation] = {
    "flip": Augmentation("horizontal flip", flip),
    "crop": Augmentation(f"random crop ({PAD}-pixel padding)", crop),
    "rotate": Augmentation(f"small rotation (+-{MAX_ROTATION_DEG:g} degrees)", rotate),
    "zoom": Augmentation(f"zoom ({ZOOM_RANGE[0]:g}-{ZOOM_RANGE[1]:g}x)", zoom),
    "jitter": Augmentation(f"colour jitter (+-{JITTER:.0%} brightness, contrast, saturation)", jitter),
    "cutout": Augmentation(f"cutout ({CUTOUT_SIZE}x{CUTOUT_SIZE} square)", cutout),
    "mixup": Augmentation(f"MixUp (alpha {MIXUP_ALPHA:g})", mixup, mixes_labels=True),
    "cutmix": Augmentation("CutMix (a box from another image)", cutmix, mixes_labels=True),
}
STANDARD = ("flip", "crop")  # the study-era switch, and `--augment standard`
MIXERS = tuple(name for name, entry in AUGMENTATIONS.items() if entry.mixes_labels)


def canonical(ops) -> tuple[str, ...]:
    """The chosen operations in the menu's order, each once (unknown names kept, last, for `check`)."""
    chosen = list(dict.fromkeys(ops))
    return tuple(name for name in AUGMENTATIONS if name in chosen) + \
        tuple(name for name in chosen if name not in AUGMENTATIONS)


def parse(text: str) -> tuple[str, ...]:
    """`--augment` text: a comma list of operations, 'none' or 'standard' (= flip,crop).

    ConfigError naming the unknown operation otherwise.
    """
    names = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    if names in (["none"], []):
        return ()
    expanded = [op for name in names for op in (STANDARD if name == "standard" else (name,))]
    problems = check(expanded)
    if problems:
        raise ConfigError(f"augment: {problems[0]}", field_name="augment")
    return canonical(expanded)


def check(ops) -> list[str]:
    """Problems with a list of operation names (unknown names, wrong type)."""
    if not isinstance(ops, (list, tuple)) or not all(isinstance(op, str) for op in ops):
        return [f"must be a list of operation names, got {ops!r}"]
    return [f"unknown augmentation {op!r}; choose from {', '.join(AUGMENTATIONS)} (or none, standard)"
            for op in ops if op not in AUGMENTATIONS]


def mixes_labels(ops) -> bool:
    """Whether the operations need one-hot labels (MixUp or CutMix is among them)."""
    return any(op in MIXERS for op in ops)


def apply(images, labels, ops, seed):
    """The operations `ops` (menu names) on a batch, each with its own seed split from `seed`.

    When both MixUp and CutMix are chosen, each batch gets one of them, picked with even odds.
    """
    tf = _tf()
    ops = canonical(ops)
    if not ops:
        return images, labels
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(ops) + 1)
    images = tf.cast(images, tf.float32)
    plain = [op for op in ops if op not in MIXERS]
    for index, op in enumerate(plain):
        images, labels = AUGMENTATIONS[op].apply(images, labels, seeds[index])
    mixers = [op for op in ops if op in MIXERS]
    if len(mixers) == 1:
        images, labels = AUGMENTATIONS[mixers[0]].apply(images, labels, seeds[len(plain)])
    elif mixers:
        pick = tf.random.stateless_uniform([], seeds[-1]) < 0.5
        images, labels = tf.cond(pick, lambda: mixup(images, labels, seeds[len(plain)]),
                                 lambda: cutmix(images, labels, seeds[len(plain)]))
    return images, labels


# -- for people ------------------------------------------------------------------------------
def preview(images: np.ndarray, ops, seed: int = 0) -> np.ndarray:
    """uint8 (N, 32, 32, 3) `images` under `ops`, as one training batch would see them.

    Labels are the images' own positions (one-hot), so MixUp and CutMix show how the
    batch's images are mixed with one another.
    """
    tf = _tf()
    images = np.asarray(images)
    labels = tf.one_hot(tf.range(len(images)), max(len(images), 1))
    out, _ = apply(tf.constant(images, tf.float32), labels, ops, tf.constant([seed, 0], tf.int64))
    return np.clip(np.rint(out.numpy()), 0, 255).astype(np.uint8)


def flip_average(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of `predict` on the images and on their mirror images."""
    images = np.asarray(images)
    return (np.asarray(predict(images)) + np.asarray(predict(images[:, :, ::-1]))) / 2.0
