"""The data set held on the training device: each step gathers its batch there.

With a GPU, tf.data copies every batch from host memory and runs its shuffling and
augmentation on the CPU, which starves a fast GPU. Here the images are copied to the
device once (float16: 0..255 exactly, half the memory of float32; CIFAR-100's
training set takes 300 MB), tf.data only hands out batches of indices (a few hundred
bytes each, in an order seeded by the run's seed and the epoch, as `data.make_dataset`),
and the gather, the cast and the augmentation run inside the compiled training step;
augmentation seeds come from the optimizer's step counter, which a resumed run restores. Under MirroredStrategy each
replica holds its own copy and gathers its share of each batch.
"""
from __future__ import annotations

from .runtime import import_tensorflow


class _Arrays:
    """Images and labels of one split as device variables (a plain object, so Keras does not
    count them among the model's weights)."""

    def __init__(self, x, y):
        import tensorflow as tf

        self.images = tf.Variable(tf.constant(x, dtype=tf.float16), trainable=False, name="images")
        self.labels = tf.Variable(tf.constant(y, dtype=tf.int32), trainable=False, name="labels")

    def batch(self, indices):
        import tensorflow as tf

        return tf.cast(tf.gather(self.images, indices), tf.float32), tf.gather(self.labels, indices)


def device_fed(model, split, batch_size: int, *, seed: int, augment: tuple[str, ...] = (),
               num_classes: int | None = None, epoch=None):
    """(trainer, train_ds, val_ds): a Keras model that trains `model` from device-held copies
    of `split`, and the index datasets to fit it on; each pass of train_ds serves the epoch
    held by `epoch` (a `data.epoch_variable`, made outside the strategy's scope). `augment` names operations of
    lsc_core.augment, run in the training step; labels are one-hot when `num_classes` is
    given (label smoothing, MixUp, CutMix). Call inside the run's strategy scope (and
    precision), so that the copies and the optimizer live where training runs."""
    keras = import_tensorflow()
    import tensorflow as tf

    from . import augment as augmentations
    from .data import _index_batches

    def labelled(batch):
        images, labels = batch
        return images, (tf.one_hot(labels, num_classes) if num_classes else labels)

    class DeviceFed(keras.Model):
        def __init__(self):
            super().__init__(name=f"{model.name}_device_fed")
            self.inner = model
            self._splits = {"train": _Arrays(split.x_train, split.y_train), "val": _Arrays(split.x_val, split.y_val)}

        def call(self, images, training=False):
            return self.inner(images, training=training)

        def train_step(self, indices):
            images, labels = labelled(self._splits["train"].batch(indices))
            if augment:
                images, labels = augmentations.apply(images, labels, augment, self._step_seed())
            return super().train_step((images, labels))

        def test_step(self, indices):
            return super().test_step(labelled(self._splits["val"].batch(indices)))

        def _symbolic_build(self, iterator=None, data_batch=None):
            # Under a distribution strategy Keras builds the model up front from one batch of
            # the dataset (averaged over replicas), which here holds indices: build it from as
            # many images instead; only their shapes matter. (A private hook of Keras's
            # trainer; keras is pinned in requirements.txt.)
            if data_batch is not None:
                data_batch = self._splits["train"].batch(tf.range(tf.shape(data_batch)[0]))
            return super()._symbolic_build(iterator=iterator, data_batch=data_batch)

        def _step_seed(self):
            # A new stateless seed each step and on each replica, fixed by the run's seed.
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            step = tf.cast(self.optimizer.iterations, tf.int32)
            return tf.stack([tf.constant(seed, tf.int32) + step * 1009, tf.cast(replica, tf.int32)])

    trainer = DeviceFed()
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False

    def indices(count, shuffle, epoch_held=None):
        numbered = _index_batches(count, batch_size, shuffle, seed, epoch_held)
        return numbered.map(lambda step, batch: batch).prefetch(2).with_options(options)

    return trainer, indices(len(split.x_train), True, epoch), indices(len(split.x_val), False)
