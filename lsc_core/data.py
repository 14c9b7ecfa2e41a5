"""CIFAR-100: loading, label names, the fine->coarse map, splits and tf.data pipelines.

Three sources, tried in this order by `load_cifar100`:
1. an explicit path or $LSC_DATA: a `.npz` (layout of shared/data/README.md), a
   `cifar-100-python` directory or a `cifar-100-python.tar.gz` archive;
2. the Keras cache ($KERAS_HOME or ~/.keras, subdirectory `datasets`);
3. a download through `keras.utils.get_file` (progress bar, sha256 check).

The official archive holds Python 2 pickles. We never unpickle them freely (a
pickle can run any code): `load_official_pickle` admits only the numpy globals
that the official files use.

TensorFlow and Keras are imported inside the functions that need them, so that
importing this module (every dashboard page does) stays fast.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .config import IMAGE_SHAPE, NUM_CLASSES

# The official release, and the sha256 that keras/src/datasets/cifar100.py pins for it.
CIFAR100_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
OFFICIAL_DIR = "cifar-100-python"
OFFICIAL_FILES = ("train", "test", "meta")


# Label names exactly as in the official `meta` file; index = label.
FINE_LABELS: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
COARSE_LABELS: tuple[str, ...] = (
    "aquatic_mammals", "fish", "flowers", "food_containers",
    "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals",
    "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)
# Superclass of each fine class in the official release (index = fine label), so
# code without the data (e.g. predictions from a fine model) can name superclasses.
FINE_TO_COARSE: tuple[int, ...] = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)

# The only globals an official CIFAR-100 pickle refers to: numpy array
# reconstruction, spelled for numpy < 2 (`numpy.core`) and >= 2 (`numpy._core`).
# Dicts, lists, ints and byte strings need no globals at all.
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
})


class DataError(Exception):
    """One clear, user-facing message (no traceback needed)."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays with == is ambiguous
class Cifar100:
    """CIFAR-100 in memory: uint8 RGB images (N, 32, 32, 3), uint8 labels, names."""

    x_train: np.ndarray
    y_train_fine: np.ndarray
    y_train_coarse: np.ndarray
    x_test: np.ndarray
    y_test_fine: np.ndarray
    y_test_coarse: np.ndarray
    fine_names: tuple[str, ...]
    coarse_names: tuple[str, ...]
    source: str

    def labels(self, split: str, mode: str) -> np.ndarray:
        """Labels of `split` ("train"|"test") in `mode` ("fine"|"coarse")."""
        _check_mode(mode)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        return getattr(self, f"y_{split}_{mode}")

    def images(self, split: str) -> np.ndarray:
        """Images of `split` ("train"|"test")."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        return getattr(self, f"x_{split}")

    def names(self, mode: str) -> tuple[str, ...]:
        """Class names of `mode` ("fine"|"coarse"); index = label."""
        _check_mode(mode)
        return self.fine_names if mode == "fine" else self.coarse_names

    @property
    def fine_to_coarse(self) -> np.ndarray:
        """(100,) int: the superclass of each fine class, from the labels (-1 if absent)."""
        return _fine_to_coarse(
            np.concatenate([self.y_train_fine, self.y_test_fine]),
            np.concatenate([self.y_train_coarse, self.y_test_coarse]),
        )


@dataclass(frozen=True, eq=False)
class Split:
    """Training and validation arrays for one label mode; labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    validation: str  # "test" or "holdout"


def _check_mode(mode: str) -> None:
    if mode not in NUM_CLASSES:
        raise ValueError(f"label mode must be 'fine' or 'coarse', not {mode!r}")


def _fine_to_coarse(y_fine: np.ndarray, y_coarse: np.ndarray) -> np.ndarray:
    mapping = np.full(NUM_CLASSES["fine"], -1, dtype=np.int64)
    mapping[y_fine] = y_coarse
    return mapping


# ---------------------------------------------------------------- locating data


def resolve_data_path(path: str | os.PathLike | None = None) -> Path | None:
    """The data path to use: `path` if given, else $LSC_DATA if set, else None."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    env = os.environ.get("LSC_DATA", "")
    return Path(env).expanduser() if env else None


def keras_cache_dir() -> Path:
    """Where Keras caches data sets: $KERAS_HOME/datasets or ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser() / "datasets"


def _cached_copy(cache: Path) -> Path | None:
    """An existing CIFAR-100 in the Keras cache, or None."""
    candidates = (
        cache / OFFICIAL_DIR,
        cache / ARCHIVE_NAME,
        # where keras.datasets.cifar100.load_data() (Keras 3) extracts it
        cache / "cifar-100-python-target" / OFFICIAL_DIR,
    )
    for candidate in candidates:
        if candidate.is_file() or all((candidate / f).is_file() for f in OFFICIAL_FILES):
            return candidate
    return None


def load_cifar100(path: str | os.PathLike | None = None, *, download: bool = True) -> Cifar100:
    """Load CIFAR-100 from `path`, $LSC_DATA, the Keras cache or a Keras download.

    Raises DataError with one user-facing message when the data is missing,
    cannot be downloaded, or is malformed.
    """
    explicit = resolve_data_path(path)
    if explicit is not None:
        return _load_path(explicit)
    cache = keras_cache_dir()
    cached = _cached_copy(cache)
    if cached is not None:
        return _load_path(cached)
    if not download:
        raise _not_found(cache, "downloading was not allowed")
    try:
        archive = _download(cache)
    except Exception as exc:  # get_file raises bare Exception for network errors
        raise _not_found(cache, _short(exc)) from None
    return _read_targz(archive, kind="official archive, downloaded by Keras")


def _download(cache: Path) -> Path:
    """Download the official archive into the Keras cache (progress bar, sha256)."""
    from .runtime import import_tensorflow

    get_file = import_tensorflow().utils.get_file
    # Keras falls back to /tmp/.keras when the cache folder does not exist yet,
    # and reads $KERAS_HOME only once, at import: create it and name it explicitly.
    cache.mkdir(parents=True, exist_ok=True)
    return Path(get_file(
        fname=ARCHIVE_NAME, origin=CIFAR100_ORIGIN, file_hash=CIFAR100_SHA256,
        cache_subdir="datasets", cache_dir=str(cache.parent),
    ))


def _not_found(cache: Path, reason: str) -> DataError:
    return DataError(
        f"CIFAR-100 was not found (looked in {cache}) and could not be downloaded: "
        f"{reason}. Supply it by setting LSC_DATA (or passing --data) to a "
        f"cifar100.npz, a {OFFICIAL_DIR} directory or {ARCHIVE_NAME}."
    )


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_path(path: Path) -> Cifar100:
    """Load whichever of the three formats `path` is."""
    if not path.exists():
        raise DataError(
            f"CIFAR-100 data path {path} does not exist (expected a .npz, a "
            f"{OFFICIAL_DIR} directory or {ARCHIVE_NAME})."
        )
    if path.is_dir():
        # Accept the directory that contains cifar-100-python/ as well.
        inner = path / OFFICIAL_DIR
        return _read_official_dir(inner if inner.is_dir() else path)
    with open(path, "rb") as f:
        magic = f.read(4)
    # Sniff the content, not the name: Keras's own cache names its archive without a suffix.
    if magic.startswith(b"PK"):
        return _read_npz(path)
    return _read_targz(path, kind="official archive")


# ------------------------------------------------------------------ the formats


def _read_npz(path: Path) -> Cifar100:
    """Read the shared/data/README.md layout, never unpickling anything."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path} is not a readable .npz file: {_short(exc)}") from None
    return _assemble(arrays, source=f"{path} (npz)")


def _read_official_dir(directory: Path) -> Cifar100:
    missing = [f for f in OFFICIAL_FILES if not (directory / f).is_file()]
    if missing:
        raise DataError(
            f"{directory} is not a {OFFICIAL_DIR} directory: it lacks {', '.join(missing)}."
        )
    pickles = {}
    for name in OFFICIAL_FILES:
        with open(directory / name, "rb") as f:
            pickles[name] = load_official_pickle(f, name=str(directory / name))
    return _from_official(pickles, source=f"{directory} (official directory)")


def _read_targz(path: Path, *, kind: str) -> Cifar100:
    """Read train/test/meta from the archive in memory; nothing is extracted to disk."""
    members = {}
    try:
        # Stream mode reads the gzip once, front to back.
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in OFFICIAL_FILES and name not in members:
                    members[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable .npz or {ARCHIVE_NAME} archive: {_short(exc)}"
        ) from None
    missing = [f"{OFFICIAL_DIR}/{f}" for f in OFFICIAL_FILES if f not in members]
    if missing:
        raise DataError(f"{path} is not a CIFAR-100 archive: it lacks {', '.join(missing)}.")
    pickles = {
        name: load_official_pickle(blob, name=f"{path} member {OFFICIAL_DIR}/{name}")
        for name, blob in members.items()
    }
    return _from_official(pickles, source=f"{path} ({kind})")


class _CifarUnpickler(pickle.Unpickler):
    """Admits only the globals that the official CIFAR-100 pickles contain."""

    def __init__(self, file, name: str):
        # encoding="bytes": the official files are Python 2 pickles of byte strings.
        super().__init__(file, encoding="bytes")
        self._name = name

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(
            f"The CIFAR-100 loader refuses to load global '{module}.{name}' from "
            f"{self._name}: not part of the CIFAR-100 format."
        )

    def persistent_load(self, pid):
        raise DataError(f"{self._name} uses persistent ids: not part of the CIFAR-100 format.")


def load_official_pickle(fileobj_or_bytes, *, name: str = "the pickle") -> dict:
    """Unpickle one official CIFAR-100 file (train, test or meta) safely.

    Only numpy array reconstruction is admitted; any other global (os.system,
    builtins.eval, ...) raises DataError before anything runs. Keys stay as in
    the file (bytes for the official files). `name` appears in error messages.
    """
    if isinstance(fileobj_or_bytes, (bytes, bytearray, memoryview)):
        fileobj_or_bytes = io.BytesIO(fileobj_or_bytes)
    try:
        result = _CifarUnpickler(fileobj_or_bytes, name).load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise DataError(f"{name} is not a readable CIFAR-100 pickle: {_short(exc)}") from None
    if not isinstance(result, dict):
        raise DataError(f"{name} holds a {type(result).__name__}, not a CIFAR-100 dict.")
    return result


def _field(d: dict, key: str, source: str):
    """d[key], accepting bytes keys (Python 2 pickles) and str keys."""
    for candidate in (key.encode(), key):
        if candidate in d:
            return d[candidate]
    raise DataError(f"{source} lacks the key '{key}'.")


def _from_official(pickles: dict, source: str) -> Cifar100:
    arrays = {}
    for split in ("train", "test"):
        d, where = pickles[split], f"{source}, file {split}"
        data = np.asarray(_field(d, "data", where))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(
                f"{where}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)."
            )
        # Each row is three 32x32 planes, R then G then B, each row-major.
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        arrays[f"x_{split}"] = np.ascontiguousarray(images)
        for mode in NUM_CLASSES:
            arrays[f"y_{split}_{mode}"] = _label_array(_field(d, f"{mode}_labels", where), where)
    meta = pickles["meta"]
    for mode in NUM_CLASSES:
        arrays[f"{mode}_label_names"] = _field(meta, f"{mode}_label_names", f"{source}, file meta")
    return _assemble(arrays, source)


def _label_array(values, where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: labels are not integers.") from None


# ------------------------------------------------------------------- validation


def _assemble(arrays: dict, source: str) -> Cifar100:
    """Check everything a training run relies on, then build Cifar100."""
    fields = {}
    for split in ("train", "test"):
        images = _images(arrays, f"x_{split}", source)
        fields[f"x_{split}"] = images
        for mode, n in NUM_CLASSES.items():
            key = f"y_{split}_{mode}"
            fields[key] = _labels(arrays, key, n, len(images), source)
    fine = np.concatenate([fields["y_train_fine"], fields["y_test_fine"]])
    coarse = np.concatenate([fields["y_train_coarse"], fields["y_test_coarse"]])
    if not _is_function(fine, coarse):
        raise DataError(f"{source}: a fine class occurs with more than one superclass.")
    return Cifar100(
        **fields,
        fine_names=_names(arrays, "fine_label_names", FINE_LABELS, source),
        coarse_names=_names(arrays, "coarse_label_names", COARSE_LABELS, source),
        source=source,
    )


def _images(arrays: dict, key: str, source: str) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{source} lacks the key '{key}'.")
    x = arrays[key]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{source}: '{key}' is {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)."
        )
    if len(x) == 0:
        raise DataError(f"{source}: '{key}' holds no images.")
    return x


def _labels(arrays: dict, key: str, num_classes: int, length: int, source: str) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{source} lacks the key '{key}'.")
    y = np.asarray(arrays[key])
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise DataError(f"{source}: '{key}' is {y.dtype} {y.shape}, expected integer (N,).")
    if len(y) != length:
        raise DataError(f"{source}: '{key}' has {len(y)} labels for {length} images.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{source}: '{key}' has labels {y.min()}..{y.max()}, expected 0..{num_classes - 1}."
        )
    return y.astype(np.uint8)


def _is_function(y_fine: np.ndarray, y_coarse: np.ndarray) -> bool:
    """True when every fine class occurs with exactly one coarse label."""
    pairs = np.unique(y_fine.astype(np.int64) * 100 + y_coarse)
    return len(pairs) == len(np.unique(y_fine))


def _names(arrays: dict, key: str, default: tuple[str, ...], source: str) -> tuple[str, ...]:
    # A hand-made npz may omit the names; they are fixed by the data set anyway.
    if key not in arrays:
        return default
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in arrays[key])
    if len(names) != len(default):
        raise DataError(f"{source}: '{key}' has {len(names)} names, expected {len(default)}.")
    return names


# ------------------------------------------------------------ splits and views


def split_data(
    data: Cifar100,
    label_mode: str,
    *,
    validation: str = "test",
    holdout_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
) -> Split:
    """Training and validation arrays for `label_mode`.

    validation="test" validates on the test set (as the study did); "holdout"
    holds out a seeded, per-class stratified `holdout_fraction` of the training
    set. `limit` keeps the first `limit` remaining training images in order; the
    validation set does not depend on it, so runs with different limits compare.
    """
    _check_mode(label_mode)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    y = data.labels("train", label_mode).astype(np.int32)
    if validation == "test":
        train_idx = np.arange(len(y))
        x_val, y_val = data.x_test, data.labels("test", label_mode).astype(np.int32)
    elif validation == "holdout":
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), not {holdout_fraction}")
        train_idx, val_idx = _stratified_holdout(y, holdout_fraction, seed)
        x_val, y_val = data.x_train[val_idx], y[val_idx]
    else:
        raise ValueError(f"validation must be 'test' or 'holdout', not {validation!r}")
    train_idx = train_idx[:limit]
    return Split(data.x_train[train_idx], y[train_idx], x_val, y_val, validation)


def _stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; val takes round(fraction * n_c) of each class c."""
    rng = np.random.default_rng(seed)
    held = [
        rng.permutation(members)[: round(fraction * len(members))]
        for members in (np.flatnonzero(y == c) for c in np.unique(y))
    ]
    val = np.sort(np.concatenate(held))
    keep = np.ones(len(y), dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep), val


def class_counts(data: Cifar100, mode: str) -> dict[str, np.ndarray]:
    """Images per class of `mode`: {"train": counts, "test": counts}."""
    _check_mode(mode)
    n = NUM_CLASSES[mode]
    return {s: np.bincount(data.labels(s, mode), minlength=n) for s in ("train", "test")}


def superclass_members(data: Cifar100) -> list[tuple[str, list[str]]]:
    """Each superclass name with the names of its fine classes, in label order."""
    mapping = data.fine_to_coarse
    return [
        (coarse, [data.fine_names[f] for f in np.flatnonzero(mapping == c)])
        for c, coarse in enumerate(data.coarse_names)
    ]


def sample_indices(
    data: Cifar100, *, mode: str, label: int, split: str = "train", count: int = 16, seed: int = 0
) -> np.ndarray:
    """Sorted indices of up to `count` images of class `label`, chosen with `seed`."""
    labels = data.labels(split, mode)
    if not 0 <= label < NUM_CLASSES[mode]:
        raise ValueError(f"{mode} label must be in 0..{NUM_CLASSES[mode] - 1}, not {label}")
    members = np.flatnonzero(labels == label)
    chosen = np.random.default_rng(seed).choice(members, min(count, len(members)), replace=False)
    return np.sort(chosen)


# ----------------------------------------------------------------- tf.data


def epoch_variable(first: int = 0):
    """The epoch (0-based, counted over the whole run) that the next pass over a training
    dataset of `make_dataset` serves; `EpochFeed` sets it as each epoch begins.

    A variable read by the pipeline, not tf.data's per-iteration randomness, because a
    resumed run must produce exactly what an uninterrupted one produces from its epoch on,
    whatever the process has iterated before. Make it outside a distribution strategy's
    scope (inside, it would become a mirrored variable, which tf.data cannot read).
    """
    import tensorflow as tf

    with tf.device("/cpu:0"):
        return tf.Variable(int(first), dtype=tf.int64, trainable=False, name="data_epoch")


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
    augment: tuple[str, ...] = (), num_classes: int | None = None, epoch=None,
):
    """A tf.data.Dataset of one epoch of (float32 images in 0..255, labels) batches.

    Vectorised like Keras's own pipeline for arrays: an epoch shuffles a vector of indices
    and each batch is one gather from the whole uint8 array, cast to float32 only then (4x
    less memory traffic than gathering floats). Shuffling and batching element by element
    cost ~10% of a CPU epoch of seed-part1 in threads that compete with training (issue 9).
    There is no division by 255 because every model carries its own rescaling layer.

    Each pass serves the epoch held by `epoch` (a variable of `epoch_variable`; None:
    epoch 0 always), and what it serves depends only on (`seed`, epoch): the order is a
    permutation seeded by both, and `augment` (operations of lsc_core.augment) gets the
    stateless seed (`seed`, the batch's step number in the run). So a run resumed at epoch
    k sees exactly the batches an uninterrupted run sees from epoch k on. Labels are int32,
    or one-hot float32 when `num_classes` is given (label smoothing, MixUp and CutMix).
    """
    import tensorflow as tf

    from . import augment as augmentations

    arrays = tf.data.Dataset.from_tensors((x, np.asarray(y, dtype=np.int32))).repeat()

    def batch(numbered, pair):
        step, indices = numbered
        labels = tf.gather(pair[1], indices)
        labels = tf.one_hot(labels, num_classes) if num_classes else labels
        images = tf.cast(tf.gather(pair[0], indices), tf.float32)
        if augment:
            return augmentations.apply(images, labels, augment, tf.stack([tf.constant(seed, tf.int64), step]))
        return images, labels

    ds = tf.data.Dataset.zip(_index_batches(len(x), batch_size, shuffle, seed, epoch), arrays).map(
        batch, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # tf.data's default graph rewrites serialise the pipeline, with the whole image array
    # in it, each time an epoch's iterator is made; Keras turns them off for arrays too.
    options.experimental_optimization.apply_default_optimizations = False
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _index_batches(count: int, batch_size: int, shuffle: bool, seed: int, epoch=None):
    """A dataset of one epoch's batches as (step, int32 index vector) (the last batch may be
    short): the epoch is read from the variable `epoch` when a pass begins (None: 0), the
    order is seeded by (`seed`, epoch) when `shuffle`, and step numbers count batches from
    the start of the run (epoch x batches per epoch + batch)."""
    import tensorflow as tf

    full, steps = count // batch_size, -(-count // batch_size)

    def one_epoch(number):
        order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64),
                                                                                         number])) \
            if shuffle else tf.range(count)
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full * batch_size], [full, batch_size]))
        if count % batch_size:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size:]))
        return tf.data.Dataset.zip(tf.data.Dataset.range(number * steps, (number + 1) * steps), batches)

    start = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    if epoch is not None:  # read when the pass reaches its first batch, i.e. after the epoch began
        start = start.map(lambda _: epoch.read_value())
    # flat_map hides the count; Keras needs it for its progress and epoch ends.
    return start.flat_map(one_epoch).apply(tf.data.experimental.assert_cardinality(steps))


def epoch_feed(epoch, offset: int = 0):
    """The Keras callback that sets `epoch` (an `epoch_variable`) as each epoch of a fit begins:
    Keras's epoch index plus `offset` (the epochs of the run's earlier fit phases; the
    attribute may be changed between fits). List it first, before any callback that may
    iterate data."""
    import keras

    class EpochFeed(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.offset = offset

        def on_epoch_begin(self, index, logs=None):
            epoch.assign(index + self.offset)

    return EpochFeed()
