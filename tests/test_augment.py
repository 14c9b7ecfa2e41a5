"""The augmentation menu on real batches: seeded, shape-keeping, each doing what it says."""
import numpy as np
import pytest

from lsc_core import augment
from lsc_core.config import ConfigError


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 32, 32, 3)).astype(np.uint8)
    return images


def run(images, ops, seed=1, one_hot=True):
    import tensorflow as tf

    labels = tf.one_hot(tf.range(len(images)), len(images)) if one_hot else tf.range(len(images))
    out, mixed = augment.apply(tf.constant(images, tf.float32), labels, ops, tf.constant([seed, 7], tf.int64))
    return out.numpy(), mixed.numpy()


@pytest.mark.parametrize("op", list(augment.AUGMENTATIONS))
def test_each_operation_is_seeded_and_keeps_the_batch_shape(batch, op):
    out, labels = run(batch, [op])
    assert ((32, 32, 32, 3), np.float32) == (out.shape, out.dtype)
    assert -1e-3 <= out.min() and out.max() <= 255 + 1e-3  # float rounding of blends
    assert np.array_equal(out, run(batch, [op])[0])
    assert not np.array_equal(out, run(batch, [op], seed=2)[0])
    assert not np.array_equal(out, batch.astype(np.float32))
    assert np.allclose(1.0, labels.sum(axis=1))


def test_flip_mirrors_or_keeps_each_image(batch):
    out, _ = run(batch, ["flip"])
    flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out, batch.astype(np.float32))]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch.astype(np.float32))]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_cutout_fills_one_small_square_with_the_mean_colour(batch):
    out, _ = run(batch, ["cutout"])
    changed = np.any(out != batch, axis=3)
    assert all(0 < changed[i].sum() <= augment.CUTOUT_SIZE ** 2 for i in range(32))
    assert np.allclose(out[changed], np.broadcast_to(augment.CUTOUT_FILL, out[changed].shape), atol=1e-3)


def test_mixup_and_cutmix_mix_labels_as_much_as_pixels(batch):
    _, labels = run(batch, ["mixup"])
    partner = labels[:, ::-1].diagonal()  # each image is mixed with the batch reversed
    assert np.allclose(1.0, labels.diagonal() + partner)
    out, labels = run(batch, ["cutmix"])
    from_self = np.all(out == batch, axis=3).mean(axis=(1, 2))
    assert np.allclose(from_self, labels.diagonal(), atol=1 / 1024 + 1e-6)


def test_label_mixing_needs_one_hot_labels(batch):
    with pytest.raises(ValueError, match="one-hot"):
        run(batch, ["mixup"], one_hot=False)


def test_parse_knows_none_standard_and_refuses_unknown_names():
    assert () == augment.parse("none")
    assert ("flip", "crop", "cutout") == augment.parse("cutout, standard")
    with pytest.raises(ConfigError, match="augment: unknown augmentation 'blur'"):
        augment.parse("flip,blur")


def test_preview_returns_the_augmented_images_as_uint8(batch):
    out = augment.preview(batch, ["flip", "crop", "jitter"], seed=3)
    assert ((32, 32, 32, 3), np.uint8) == (out.shape, out.dtype)
    assert np.array_equal(out, augment.preview(batch, ["flip", "crop", "jitter"], seed=3))
    assert np.array_equal(batch, augment.preview(batch, [], seed=3))


def test_flip_average_is_the_mean_of_both_views(batch):
    predict = lambda images: images.reshape(len(images), -1)[:, :2].astype(np.float64)  # noqa: E731
    pixels = batch.astype(np.float64)
    expected = (pixels.reshape(32, -1)[:, :2] + pixels[:, :, ::-1].reshape(32, -1)[:, :2]) / 2
    assert np.allclose(expected, augment.flip_average(predict, batch))
