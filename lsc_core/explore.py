"""What the Data page shows: sample images per class, the class hierarchy, class counts.

Pure functions of a loaded `Cifar100`; the page only picks the class and renders.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import Cifar100, class_counts, sample_indices, superclass_members

UPSCALE = 4  # 32x32 pixels shown as 128x128: large enough to see, small enough for a grid
MODE_LABELS = {"fine": "fine class", "coarse": "superclass"}


@dataclass(frozen=True, eq=False)
class Samples:
    """Images of one class, upscaled, with a caption (fine name and index) for each."""

    images: np.ndarray  # (n, 32 * scale, 32 * scale, 3) uint8
    captions: list[str]
    indices: np.ndarray  # positions in the split, so a person can find an image again


def upscale(images: np.ndarray, factor: int = UPSCALE) -> np.ndarray:
    """Nearest-neighbour enlargement of (..., H, W, C) images: every pixel becomes a
    factor x factor block, so the 32x32 originals stay crisp instead of blurring."""
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    return np.repeat(np.repeat(images, factor, axis=-3), factor, axis=-2)


def sample_grid(data: Cifar100, mode: str, label: int, *, count: int = 24, seed: int = 0,
                split: str = "train", scale: int = UPSCALE) -> Samples:
    """Up to `count` images of fine class or superclass `label` (mode "fine"|"coarse"),
    chosen with `seed`, each captioned with its fine class name and index in `split`."""
    indices = sample_indices(data, mode=mode, label=label, split=split, count=count, seed=seed)
    fine = data.labels(split, "fine")[indices]
    captions = [f"{data.fine_names[f]} #{i}" for f, i in zip(fine, indices)]
    return Samples(upscale(data.images(split)[indices], scale), captions, indices)


def superclass_table(data: Cifar100) -> pd.DataFrame:
    """The 20 superclasses, each with its label and its five fine classes."""
    rows = [{"label": label, "superclass": coarse, "fine classes": ", ".join(fines)}
            for label, (coarse, fines) in enumerate(superclass_members(data))]
    return pd.DataFrame(rows, columns=["label", "superclass", "fine classes"])


def class_counts_table(data: Cifar100, mode: str) -> pd.DataFrame:
    """Images per class in train and test (mode "fine"|"coarse"); fine rows name their superclass."""
    counts = class_counts(data, mode)
    table = pd.DataFrame({"label": np.arange(len(counts["train"])), "class": list(data.names(mode)),
                          "train": counts["train"], "test": counts["test"]})
    if mode == "fine":
        mapping = data.fine_to_coarse
        superclass = [data.coarse_names[c] if c >= 0 else "-" for c in mapping]
        table.insert(2, "superclass", superclass)
    return table
