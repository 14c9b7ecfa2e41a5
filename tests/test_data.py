"""lsc_core.data: the three on-disk formats, safety, errors, splits, tf.data."""

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from lsc_core import data
from lsc_core.data import DataError
import cifar_files as cf  # tests/ is on sys.path (conftest.py, and pytest's rootdir insertion)

REAL_NPZ = Path(__file__).parent.parent.parent / "shared/data/cifar100.npz"
ARRAY_KEYS = ("x_train", "y_train_fine", "y_train_coarse", "x_test", "y_test_fine", "y_test_coarse")


@pytest.fixture
def arrays():
    return cf.synthetic_arrays(n_train_per_class=2, n_test_per_class=1)


@pytest.fixture
def npz_path(tmp_path, arrays):
    return cf.write_npz(tmp_path / "cifar100.npz", arrays)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    """10 train images per fine class: room for a stratified hold-out. Read-only."""
    path = tmp_path_factory.mktemp("balanced") / "cifar100.npz"
    return data.load_cifar100(cf.write_npz(path, cf.synthetic_arrays(10, 1)))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No LSC_DATA, an empty Keras cache, and a download origin that refuses at once."""
    monkeypatch.delenv("LSC_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    # A real download attempt against a closed local port (discard, 9): fails fast.
    monkeypatch.setattr(data, "CIFAR100_ORIGIN", "http://127.0.0.1:9/cifar-100-python.tar.gz")
    return tmp_path / "keras-home" / "datasets"


def assert_same_as_arrays(loaded, arrays):
    for key in ARRAY_KEYS:
        assert np.array_equal(arrays[key], getattr(loaded, key)), key
        assert getattr(loaded, key).dtype == np.uint8, key
    assert loaded.fine_names == tuple(arrays["fine_label_names"])
    assert loaded.coarse_names == tuple(arrays["coarse_label_names"])


# ----------------------------------------------------------------- formats


def test_npz_round_trip(npz_path, arrays):
    loaded = data.load_cifar100(npz_path)
    assert_same_as_arrays(loaded, arrays)
    assert loaded.source == f"{npz_path} (npz)"
    assert loaded.x_train.shape == (200, 32, 32, 3)


@pytest.mark.parametrize("writer, name", [
    (cf.write_official_dir, "cifar-100-python"),
    (cf.write_official_targz, "cifar-100-python.tar.gz"),
])
def test_official_formats_load_the_same_arrays_as_the_npz(tmp_path, arrays, npz_path, writer, name):
    official = data.load_cifar100(writer(tmp_path / name, arrays))
    from_npz = data.load_cifar100(npz_path)
    for key in ARRAY_KEYS:
        assert np.array_equal(getattr(from_npz, key), getattr(official, key)), key
    assert_same_as_arrays(official, arrays)
    assert str(tmp_path / name) in official.source


def test_official_pickles_have_the_official_layout(arrays):
    """Our writer must match the release, or the format tests above prove nothing."""
    blob = cf.official_pickles(arrays)["train"]
    globals_used = {arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}
    assert {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"} == globals_used
    train = data.load_official_pickle(blob)
    assert {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"} == set(train)
    rows, x = train[b"data"], arrays["x_train"]
    assert (200, 3072) == rows.shape
    # Row i: R plane (1024 bytes, row-major), then G, then B.
    assert np.array_equal(x[0, :, :, 0].ravel(), rows[0, :1024])
    assert np.array_equal(x[7, :, :, 2].ravel(), rows[7, 2048:])
    r, c = 3, 29
    assert [x[5, r, c, ch] for ch in range(3)] == [rows[5, ch * 1024 + r * 32 + c] for ch in range(3)]


def test_str_keys_and_numpy2_pickles_are_accepted(tmp_path, arrays):
    """A re-pickled copy (Python 3, numpy 2 spelling, str keys) still loads."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, blob in cf.official_pickles(arrays).items():
        d = data.load_official_pickle(blob)
        plain = {k.decode(): ([v.decode() for v in val] if k.endswith(b"names") else val)
                 for k, val in d.items()}
        (folder / name).write_bytes(pickle.dumps(plain, protocol=4))
    assert_same_as_arrays(data.load_cifar100(folder), arrays)


def test_a_folder_holding_cifar_100_python_is_accepted(tmp_path, arrays):
    cf.write_official_dir(tmp_path / "cifar-100-python", arrays)
    assert_same_as_arrays(data.load_cifar100(tmp_path), arrays)


def test_labels_names_and_the_official_fine_to_coarse_map(npz_path):
    loaded = data.load_cifar100(npz_path)
    assert list(cf.OFFICIAL_FINE_TO_COARSE) == list(loaded.fine_to_coarse)
    assert list(cf.OFFICIAL_FINE_TO_COARSE) == list(data.FINE_TO_COARSE)
    assert cf.FINE_NAMES == data.FINE_LABELS == loaded.names("fine")
    assert cf.COARSE_NAMES == data.COARSE_LABELS == loaded.names("coarse")
    assert [(c, list(f)) for c, f in cf.SUPERCLASSES] == data.superclass_members(loaded)
    assert loaded.labels("test", "coarse") is loaded.y_test_coarse
    with pytest.raises(ValueError):
        loaded.labels("train", "medium")
    with pytest.raises(ValueError):
        loaded.labels("validation", "fine")


# ------------------------------------------------------------------ safety


def test_malicious_archive_is_refused_and_nothing_runs(tmp_path):
    marker = cf.write_malicious_targz(tmp_path / "cifar-100-python.tar.gz", tmp_path / "PWNED")
    with pytest.raises(DataError) as caught:
        data.load_cifar100(tmp_path / "cifar-100-python.tar.gz")
    message = str(caught.value)
    assert "refuses to load global 'os.system'" in message
    assert "cifar-100-python.tar.gz member cifar-100-python/train" in message
    assert "not part of the CIFAR-100 format" in message
    assert not marker.exists()


def test_the_malicious_payload_is_live(tmp_path):
    """The refusal test is meaningful: an unrestricted unpickler does run it."""
    marker = tmp_path / "ran"
    pickle.loads(cf.malicious_pickle(marker), encoding="bytes")
    assert marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("subprocess", "Popen"), ("posix", "system"), ("numpy", "load"),
])
def test_other_globals_are_refused(tmp_path, module, name):
    marker = tmp_path / "ran"
    blob = f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(DataError, match=f"refuses to load global '{module}.{name}' from meta"):
        data.load_official_pickle(blob, name="meta")
    assert not marker.exists()


def test_load_official_pickle_needs_a_dict():
    with pytest.raises(DataError, match="holds a list"):
        data.load_official_pickle(pickle.dumps([1, 2], protocol=2))


# ------------------------------------------------------------------ errors


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="nowhere.npz does not exist"):
        data.load_cifar100(tmp_path / "nowhere.npz")


def test_garbage_file(tmp_path):
    path = tmp_path / "cifar100.npz"
    path.write_bytes(b"this is not data" * 100)
    with pytest.raises(DataError, match=f"{path} is not a readable"):
        data.load_cifar100(path)


def test_truncated_npz(npz_path):
    npz_path.write_bytes(npz_path.read_bytes()[: npz_path.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{npz_path} is not a readable .npz"):
        data.load_cifar100(npz_path)


def test_truncated_targz(tmp_path, arrays):
    path = cf.write_official_targz(tmp_path / "cifar-100-python.tar.gz", arrays)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{path} is not a readable"):
        data.load_cifar100(path)


def test_truncated_pickle_in_directory(tmp_path, arrays):
    folder = cf.write_official_dir(tmp_path / "cifar-100-python", arrays)
    (folder / "test").write_bytes((folder / "test").read_bytes()[:5000])
    with pytest.raises(DataError, match=f"{folder / 'test'} is not a readable CIFAR-100 pickle"):
        data.load_cifar100(folder)


def test_archive_without_meta(tmp_path, arrays):
    members = cf.official_pickles(arrays)
    del members["meta"]
    path = cf.write_targz(tmp_path / "cifar-100-python.tar.gz", members)
    with pytest.raises(DataError, match="lacks cifar-100-python/meta"):
        data.load_cifar100(path)


def test_directory_without_train(tmp_path, arrays):
    folder = cf.write_official_dir(tmp_path / "cifar-100-python", arrays)
    (folder / "train").unlink()
    with pytest.raises(DataError, match="lacks train"):
        data.load_cifar100(folder)


def test_pickle_without_fine_labels(tmp_path, arrays):
    folder = cf.write_official_dir(tmp_path / "cifar-100-python", arrays)
    train = data.load_official_pickle((folder / "train").read_bytes())
    del train[b"fine_labels"]
    (folder / "train").write_bytes(cf.official_pickle_bytes(train))
    with pytest.raises(DataError, match="file train lacks the key 'fine_labels'"):
        data.load_cifar100(folder)


def _broken(arrays, key, value):
    broken = dict(arrays)
    if value is None:
        del broken[key]
    else:
        broken[key] = value
    return broken


@pytest.mark.parametrize("key, make_value, expected", [
    ("y_train_fine", lambda a: None, "lacks the key 'y_train_fine'"),
    ("x_test", lambda a: None, "lacks the key 'x_test'"),
    ("x_train", lambda a: a["x_train"][..., 0], r"'x_train' is uint8 \(200, 32, 32\), expected"),
    ("x_train", lambda a: a["x_train"].transpose(0, 3, 1, 2), r"expected uint8 \(N, 32, 32, 3\)"),
    ("x_test", lambda a: a["x_test"].astype(np.float32), "'x_test' is float32"),
    ("y_train_fine", lambda a: a["y_train_fine"].astype(np.float32), "expected integer"),
    ("y_test_coarse", lambda a: a["y_test_coarse"] + 1, r"labels 1\.\.20, expected 0\.\.19"),
    ("y_train_fine", lambda a: a["y_train_fine"][:-1], "has 199 labels for 200 images"),
    ("y_train_coarse", lambda a: np.roll(a["y_train_coarse"], 1), "more than one superclass"),
    ("fine_label_names", lambda a: a["fine_label_names"][:99], "has 99 names, expected 100"),
])
def test_malformed_npz(tmp_path, arrays, key, make_value, expected):
    path = cf.write_npz(tmp_path / "bad.npz", _broken(arrays, key, make_value(arrays)))
    with pytest.raises(DataError, match=expected) as caught:
        data.load_cifar100(path)
    assert str(path) in str(caught.value)


def test_names_may_be_omitted_from_an_npz(tmp_path, arrays):
    del arrays["fine_label_names"], arrays["coarse_label_names"]
    loaded = data.load_cifar100(cf.write_npz(tmp_path / "plain.npz", arrays))
    assert data.FINE_LABELS == loaded.fine_names


# ------------------------------------------------------- where data comes from


def test_resolve_data_path(tmp_path, monkeypatch):
    monkeypatch.delenv("LSC_DATA", raising=False)
    assert data.resolve_data_path() is None
    monkeypatch.setenv("LSC_DATA", str(tmp_path / "env.npz"))
    assert tmp_path / "env.npz" == data.resolve_data_path()
    assert tmp_path / "arg.npz" == data.resolve_data_path(tmp_path / "arg.npz")


def test_lsc_data_is_used(npz_path, arrays, monkeypatch):
    monkeypatch.setenv("LSC_DATA", str(npz_path))
    assert_same_as_arrays(data.load_cifar100(download=False), arrays)


@pytest.mark.parametrize("writer, name", [
    (cf.write_official_targz, "cifar-100-python.tar.gz"),
    (cf.write_official_dir, "cifar-100-python"),
])
def test_keras_cache_is_used(offline, arrays, writer, name):
    offline.mkdir(parents=True)
    writer(offline / name, arrays)
    loaded = data.load_cifar100()
    assert_same_as_arrays(loaded, arrays)
    assert str(offline / name) in loaded.source


def test_offline_without_data_says_how_to_supply_it(offline):
    with pytest.raises(DataError) as caught:
        data.load_cifar100()
    message = str(caught.value)
    assert "not found" in message and "could not be downloaded" in message
    assert "Connection refused" in message  # the short reason
    assert "LSC_DATA" in message and "--data" in message
    assert "cifar-100-python.tar.gz" in message and ".npz" in message
    assert not (offline / "cifar-100-python.tar.gz").exists()  # no partial file left


def test_no_download_when_not_allowed(offline):
    with pytest.raises(DataError, match="downloading was not allowed.*LSC_DATA"):
        data.load_cifar100(download=False)


# ------------------------------------------------------------------ splits


def test_split_on_the_test_set(npz_path):
    loaded = data.load_cifar100(npz_path)
    split = data.split_data(loaded, "coarse")
    assert "test" == split.validation
    assert np.array_equal(loaded.x_train, split.x_train)
    assert np.array_equal(loaded.y_train_coarse, split.y_train)
    assert np.array_equal(loaded.x_test, split.x_val)
    assert np.array_equal(loaded.y_test_coarse, split.y_val)
    assert np.int32 == split.y_train.dtype == split.y_val.dtype


def _rows(images):
    return [img.tobytes() for img in images]


@pytest.mark.parametrize("mode, per_class", [("fine", 2), ("coarse", 10)])
def test_holdout_is_stratified_and_disjoint(balanced, mode, per_class):
    split = data.split_data(balanced, mode, validation="holdout", holdout_fraction=0.2, seed=3)
    n = data.NUM_CLASSES[mode]
    assert "holdout" == split.validation
    assert [per_class] * n == list(np.bincount(split.y_val, minlength=n))
    assert [4 * per_class] * n == list(np.bincount(split.y_train, minlength=n))
    train, val, everything = _rows(split.x_train), _rows(split.x_val), _rows(balanced.x_train)
    assert len(set(everything)) == len(everything)  # noise makes every image unique
    assert not set(train) & set(val)
    assert sorted(everything) == sorted(train + val)
    # Each image keeps its label, and the remaining training images keep their order.
    index = {row: i for i, row in enumerate(everything)}
    positions = [index[row] for row in train]
    assert sorted(positions) == positions
    assert list(balanced.labels("train", mode)[positions]) == list(split.y_train)


def test_holdout_is_seeded(balanced):
    first, again, other = (
        data.split_data(balanced, "fine", validation="holdout", seed=s) for s in (1, 1, 2)
    )
    assert np.array_equal(first.x_val, again.x_val)
    assert np.array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.x_val, other.x_val)


@pytest.mark.parametrize("validation", ["test", "holdout"])
def test_limit_keeps_the_first_images_and_leaves_validation_alone(balanced, validation):
    full = data.split_data(balanced, "fine", validation=validation)
    limited = data.split_data(balanced, "fine", validation=validation, limit=50)
    assert np.array_equal(full.x_train[:50], limited.x_train)
    assert np.array_equal(full.y_train[:50], limited.y_train)
    assert np.array_equal(full.x_val, limited.x_val)
    assert np.array_equal(full.y_val, limited.y_val)
    everything = data.split_data(balanced, "fine", validation=validation, limit=10**6)
    assert np.array_equal(full.x_train, everything.x_train)


@pytest.mark.parametrize("kwargs", [
    {"label_mode": "medium"}, {"validation": "train"}, {"limit": 0},
    {"validation": "holdout", "holdout_fraction": 1.0},
])
def test_split_rejects_bad_arguments(npz_path, kwargs):
    loaded = data.load_cifar100(npz_path)
    with pytest.raises(ValueError):
        data.split_data(loaded, **{"label_mode": "fine", **kwargs})


# -------------------------------------------------------- counts and samples


def test_class_counts(balanced):
    fine = data.class_counts(balanced, "fine")
    assert [10] * 100 == list(fine["train"]) and [1] * 100 == list(fine["test"])
    assert [50] * 20 == list(data.class_counts(balanced, "coarse")["train"])


def test_sample_indices(balanced):
    picked = data.sample_indices(balanced, mode="coarse", label=7, count=16, seed=4)
    assert 16 == len(picked) == len(set(picked))
    assert {7} == set(balanced.y_train_coarse[picked])
    assert np.array_equal(picked, data.sample_indices(balanced, mode="coarse", label=7, count=16, seed=4))
    few = data.sample_indices(balanced, mode="fine", label=3, split="test", count=16)
    assert list(np.flatnonzero(balanced.y_test_fine == 3)) == list(few)
    with pytest.raises(ValueError):
        data.sample_indices(balanced, mode="coarse", label=20)


# ----------------------------------------------------------------- tf.data


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_make_dataset_batches_float_images_in_0_255(npz_path):
    loaded = data.load_cifar100(npz_path)
    batches = _batches(data.make_dataset(loaded.x_train, loaded.y_train_fine, 64, shuffle=False))
    assert [64, 64, 64, 8] == [len(x) for x, _ in batches]
    x, y = batches[0]
    assert (np.float32, (64, 32, 32, 3)) == (x.dtype, x.shape)
    assert np.int32 == y.dtype
    images = np.concatenate([x for x, _ in batches])
    assert np.array_equal(loaded.x_train.astype(np.float32), images)  # 0..255, not rescaled
    assert np.array_equal(loaded.y_train_fine, np.concatenate([y for _, y in batches]))


def test_make_dataset_order_depends_only_on_the_seed_and_the_epoch(npz_path):
    loaded = data.load_cifar100(npz_path)
    x, y = loaded.x_train, np.arange(200)  # labels as indices reveal the order

    def passes(seed, epochs):
        """One dataset iterated once per epoch number in `epochs`, each pass serving that epoch."""
        epoch = data.epoch_variable()
        ds = data.make_dataset(x, y, 50, shuffle=True, seed=seed, epoch=epoch)
        orders = []
        for number in epochs:
            epoch.assign(number)
            orders.append(list(np.concatenate([b for _, b in _batches(ds)])))
        return orders

    first, second, third = passes(seed=5, epochs=[0, 1, 2])
    assert sorted(first) == list(range(200))
    assert first != second != third
    # A stream started at epoch 2 (a run resumed there) serves what an uninterrupted one serves then.
    assert [third, first] == passes(seed=5, epochs=[2, 0])
    assert passes(seed=6, epochs=[0]) != [first]


def test_make_dataset_augmentation_depends_only_on_the_seed_and_the_epoch(npz_path):
    loaded = data.load_cifar100(npz_path)
    x, y = loaded.x_train[:32], loaded.y_train_fine[:32]
    epoch = data.epoch_variable()
    ds = data.make_dataset(x, y, 16, shuffle=False, seed=3, augment=("flip", "crop"), epoch=epoch)

    def images(number):
        epoch.assign(number)
        return np.concatenate([images for images, _ in _batches(ds)])

    zero, one = images(0), images(1)
    assert not np.array_equal(zero, one)  # new crops and flips each epoch
    assert not np.array_equal(zero[:16], zero[16:])  # and each batch
    assert np.array_equal(one, images(1)) and np.array_equal(zero, images(0))


def _is_flip_and_crop(out, original):
    padded = np.pad(original, ((4, 4), (4, 4), (0, 0)))
    for candidate in (padded, padded[:, ::-1]):
        for dy in range(9):
            for dx in range(9):
                if np.array_equal(candidate[dy:dy + 32, dx:dx + 32], out):
                    return True
    return False


def test_make_dataset_augmentation_flips_and_crops_with_a_seed(npz_path):
    loaded = data.load_cifar100(npz_path)
    x, y = loaded.x_train[:16], loaded.y_train_fine[:16]

    def run(seed):
        ds = data.make_dataset(x, y, 16, shuffle=False, seed=seed, augment=("flip", "crop"))
        return _batches(ds)[0][0]

    out = run(seed=1)
    assert (np.float32, (16, 32, 32, 3)) == (out.dtype, out.shape)
    assert 0 <= out.min() and out.max() <= 255
    assert all(_is_flip_and_crop(out[i], x[i].astype(np.float32)) for i in range(16))
    assert not np.array_equal(x.astype(np.float32), out)
    assert np.array_equal(out, run(seed=1))
    assert not np.array_equal(out, run(seed=2))


def test_make_dataset_gives_one_hot_labels_when_asked(npz_path):
    loaded = data.load_cifar100(npz_path)
    x, y = loaded.x_train[:8], loaded.y_train_fine[:8]
    labels = _batches(data.make_dataset(x, y, 8, shuffle=False, num_classes=100))[0][1]
    assert (np.float32, (8, 100)) == (labels.dtype, labels.shape)
    assert list(y) == list(labels.argmax(axis=1)) and [1.0] * 8 == list(labels.sum(axis=1))


# --------------------------------------------------------------- real data


def _real_data_path():
    env = os.environ.get("LSC_DATA")
    if env and Path(env).exists():
        return Path(env)
    return REAL_NPZ if REAL_NPZ.exists() else None


@pytest.mark.skipif(
    _real_data_path() is None,
    reason=f"real CIFAR-100 absent: set LSC_DATA or provide {REAL_NPZ}",
)
def test_real_cifar100():
    real = data.load_cifar100(_real_data_path())
    assert (50000, 32, 32, 3) == real.x_train.shape
    assert (10000, 32, 32, 3) == real.x_test.shape
    assert [500] * 100 == list(data.class_counts(real, "fine")["train"])
    assert [100] * 100 == list(data.class_counts(real, "fine")["test"])
    pairs = np.unique(real.y_train_fine.astype(int) * 20 + real.y_train_coarse)
    assert 100 == len(pairs)  # each fine class has exactly one superclass
    assert list(data.FINE_TO_COARSE) == list(real.fine_to_coarse)
    assert data.FINE_LABELS == real.fine_names and data.COARSE_LABELS == real.coarse_names
    first = [real.fine_names[i] for i in real.y_train_fine[:5]]
    assert ["cattle", "dinosaur", "apple", "boy", "aquarium_fish"] == first
