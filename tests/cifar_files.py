"""Tiny CIFAR-100 data sets in the exact on-disk formats, for tests.

`synthetic_arrays` makes learnable images with all 100 fine classes, the official
names and the official fine->coarse map; the writers put them on disk as the
shared .npz, the official `cifar-100-python` directory, or its .tar.gz, whose
pickles are byte-for-byte in the style of the official Python 2 release.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

# The official CIFAR-100 superclass table (names as in the release's meta file),
# written out here independently of lsc_core.data so tests can cross-check it.
SUPERCLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aquatic_mammals", ("beaver", "dolphin", "otter", "seal", "whale")),
    ("fish", ("aquarium_fish", "flatfish", "ray", "shark", "trout")),
    ("flowers", ("orchid", "poppy", "rose", "sunflower", "tulip")),
    ("food_containers", ("bottle", "bowl", "can", "cup", "plate")),
    ("fruit_and_vegetables", ("apple", "mushroom", "orange", "pear", "sweet_pepper")),
    ("household_electrical_devices", ("clock", "keyboard", "lamp", "telephone", "television")),
    ("household_furniture", ("bed", "chair", "couch", "table", "wardrobe")),
    ("insects", ("bee", "beetle", "butterfly", "caterpillar", "cockroach")),
    ("large_carnivores", ("bear", "leopard", "lion", "tiger", "wolf")),
    ("large_man-made_outdoor_things", ("bridge", "castle", "house", "road", "skyscraper")),
    ("large_natural_outdoor_scenes", ("cloud", "forest", "mountain", "plain", "sea")),
    ("large_omnivores_and_herbivores", ("camel", "cattle", "chimpanzee", "elephant", "kangaroo")),
    ("medium_mammals", ("fox", "porcupine", "possum", "raccoon", "skunk")),
    ("non-insect_invertebrates", ("crab", "lobster", "snail", "spider", "worm")),
    ("people", ("baby", "boy", "girl", "man", "woman")),
    ("reptiles", ("crocodile", "dinosaur", "lizard", "snake", "turtle")),
    ("small_mammals", ("hamster", "mouse", "rabbit", "shrew", "squirrel")),
    ("trees", ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree")),
    ("vehicles_1", ("bicycle", "bus", "motorcycle", "pickup_truck", "train")),
    ("vehicles_2", ("lawn_mower", "rocket", "streetcar", "tank", "tractor")),
)
COARSE_NAMES = tuple(coarse for coarse, _ in SUPERCLASSES)
FINE_NAMES = tuple(sorted(f for _, fines in SUPERCLASSES for f in fines))  # official order
OFFICIAL_FINE_TO_COARSE = np.array([
    next(c for c, (_, fines) in enumerate(SUPERCLASSES) if name in fines) for name in FINE_NAMES
])


def synthetic_arrays(n_train_per_class: int = 2, n_test_per_class: int = 1, seed: int = 0) -> dict:
    """Arrays in the shared/data/README.md npz layout, all 100 fine classes.

    Each fine class has its own colour and gradient direction (the same for
    every seed), plus seeded noise, so a tiny CNN learns it quickly. The train
    set is in a seeded random order (as the official one), the test set grouped
    by class (as the shared npz).
    """
    rng = np.random.default_rng(seed)
    fine_train = rng.permutation(np.repeat(np.arange(100), n_train_per_class))
    fine_test = np.repeat(np.arange(100), n_test_per_class)
    return {
        "x_train": _images(fine_train, rng),
        "y_train_fine": fine_train.astype(np.uint8),
        "y_train_coarse": OFFICIAL_FINE_TO_COARSE[fine_train].astype(np.uint8),
        "x_test": _images(fine_test, rng),
        "y_test_fine": fine_test.astype(np.uint8),
        "y_test_coarse": OFFICIAL_FINE_TO_COARSE[fine_test].astype(np.uint8),
        "fine_label_names": np.array(FINE_NAMES),
        "coarse_label_names": np.array(COARSE_NAMES),
    }


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 32, 32, 3) uint8: class colour + class gradient + noise (sd 12 levels)."""
    looks = np.random.default_rng(2009)  # fixed: a class looks the same in every split
    colours = looks.uniform(50, 205, size=(100, 3))
    angles = looks.uniform(0, 2 * np.pi, size=100)
    ramp = np.linspace(-1, 1, 32)
    gx, gy = np.meshgrid(ramp, ramp)  # (32, 32), x along columns
    gradients = np.cos(angles)[:, None, None] * gx + np.sin(angles)[:, None, None] * gy
    images = colours[labels][:, None, None, :] + 40 * gradients[labels][..., None]
    images = images + rng.normal(0, 12, size=images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def write_npz(path, arrays: dict) -> Path:
    """Write `arrays` as an uncompressed .npz (the shared layout); returns the path."""
    path = Path(path)
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------- official format


class _Python2Pickler(pickle._Pickler):
    """Writes pickles as Python 2's cPickle did for the official files.

    Python 3 pickles bytes (protocol < 3) through the global `_codecs.encode`,
    which the official files never contain; Python 2 wrote its byte strings
    with the (SHORT_)BINSTRING opcodes, and referred to numpy.core.multiarray.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        # numpy's reduce emits str ('u1', '|'); in Python 2 those were byte strings.
        self.save_bytes(obj.encode("latin-1"))

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str
    dispatch[type] = save_global


def official_pickle_bytes(obj) -> bytes:
    """`obj` pickled as in the official release (Python 2 style, protocol 2)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def official_pickles(arrays: dict) -> dict[str, bytes]:
    """The official files `train`, `test` and `meta` for `arrays`, as bytes."""
    files = {}
    for split, batch_label in (("train", b"training batch 1 of 1"), ("test", b"testing batch 1 of 1")):
        x = arrays[f"x_{split}"]
        fine = arrays[f"y_{split}_fine"]
        # Each row: the R plane (1024 bytes, row-major), then G, then B.
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))
        files[split] = official_pickle_bytes({
            b"filenames": [
                f"{arrays['fine_label_names'][f]}_s_{i:06d}.png".encode() for i, f in enumerate(fine)
            ],
            b"batch_label": batch_label,
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) for v in arrays[f"y_{split}_coarse"]],
            b"data": data,
        })
    files["meta"] = official_pickle_bytes({
        b"fine_label_names": [str(n).encode() for n in arrays["fine_label_names"]],
        b"coarse_label_names": [str(n).encode() for n in arrays["coarse_label_names"]],
    })
    return files


def write_official_dir(dirpath, arrays: dict) -> Path:
    """Write a `cifar-100-python` directory (train, test, meta); returns it."""
    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    for name, blob in official_pickles(arrays).items():
        (dirpath / name).write_bytes(blob)
    return dirpath


def write_targz(path, members: dict[str, bytes]) -> Path:
    """A .tar.gz with `members` (name -> bytes) under cifar-100-python/."""
    path = Path(path)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-100-python")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def write_official_targz(path, arrays: dict) -> Path:
    """Write `cifar-100-python.tar.gz` as released (members under cifar-100-python/)."""
    return write_targz(path, official_pickles(arrays))


def malicious_pickle(marker) -> bytes:
    """A pickle that, if loaded without restriction, runs `touch marker` via os.system."""
    command = f"touch {marker}".encode()
    return b"cos\nsystem\n(S'" + command + b"'\ntR."


def write_malicious_targz(path, marker=None) -> Path:
    """An otherwise valid archive whose `train` calls os.system("touch MARKER").

    MARKER (default: PWNED beside the archive) exists afterwards only if the
    pickle was executed. Returns the marker path.
    """
    path = Path(path)
    marker = Path(marker) if marker is not None else path.parent / "PWNED"
    members = official_pickles(synthetic_arrays(1, 1))
    members["train"] = malicious_pickle(marker)
    write_targz(path, members)
    return marker
