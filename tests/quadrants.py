"""Data whose label is decided by one quadrant only, for testing Grad-CAM on a real model.

The top-right quadrant is filled with the colour of the label (one of COLOURS, the
coarse classes 0..3); the rest is dim random noise. A network trained on it must look
at the top-right quadrant, and Grad-CAM must say so. Top-right (not top-left) so that a
heatmap transposed or flipped by mistake lands elsewhere. Test images may also carry
another class's colour in the bottom-left quadrant (a distractor), where Grad-CAM of
that class must look.
"""
from __future__ import annotations

import numpy as np

from cifar_files import COARSE_NAMES, FINE_NAMES, OFFICIAL_FINE_TO_COARSE

COLOURS = np.array([[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20]])  # coarse classes 0..3
NOISE_MAX = 96  # dim noise: bright enough to vary, darker than any label colour
LABEL_QUADRANT = (slice(0, 16), slice(16, 32))  # rows, columns of the top-right quadrant
DISTRACTOR_QUADRANT = (slice(16, 32), slice(0, 16))  # bottom-left


def quadrant_images(n: int, rng: np.random.Generator, distractor: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, 32, 32, 3) uint8, labels (n,), distractor classes (n,), painted only if `distractor`)."""
    labels = rng.integers(0, len(COLOURS), n)
    distractors = (labels + rng.integers(1, len(COLOURS), n)) % len(COLOURS)
    images = rng.integers(0, NOISE_MAX, (n, 32, 32, 3)).astype(np.uint8)
    images[:, LABEL_QUADRANT[0], LABEL_QUADRANT[1]] = COLOURS[labels][:, None, None, :]
    if distractor:
        images[:, DISTRACTOR_QUADRANT[0], DISTRACTOR_QUADRANT[1]] = COLOURS[distractors][:, None, None, :]
    return images, labels, distractors


def quadrant_arrays(n_train: int = 512, n_test: int = 64, seed: int = 0) -> dict:
    """The data in the shared npz layout: coarse label = colour; fine = the first fine class of it."""
    rng = np.random.default_rng(seed)
    first_fine = np.array([int(np.flatnonzero(OFFICIAL_FINE_TO_COARSE == c)[0]) for c in range(len(COLOURS))])
    arrays = {"fine_label_names": np.array(FINE_NAMES), "coarse_label_names": np.array(COARSE_NAMES)}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels, _ = quadrant_images(n, rng)
        arrays.update({f"x_{split}": images, f"y_{split}_coarse": labels.astype(np.uint8),
                       f"y_{split}_fine": first_fine[labels].astype(np.uint8)})
    return arrays


def quadrant_shares(heat: np.ndarray) -> np.ndarray:
    """Share of the total heat per quadrant: [[top-left, top-right], [bottom-left, bottom-right]]."""
    heat = np.asarray(heat, dtype=np.float64)
    h, w = heat.shape[0] // 2, heat.shape[1] // 2
    sums = np.array([[heat[:h, :w].sum(), heat[:h, w:].sum()], [heat[h:, :w].sum(), heat[h:, w:].sum()]])
    return sums / max(sums.sum(), 1e-12)
