"""Errors that respect the class hierarchy, measured while a fine run trains.

For a fine-label run, each epoch records the share of its wrong predictions that are
another class of the right superclass (a maple taken for an oak, not for a bus): a model
that errs within superclasses has learned the coarse structure even where it misses the
fine class. Random errors stay inside the superclass 4 times in 99 (4%).

Computed in the graph by a stateful Keras metric from y_true and y_pred with a constant
fine->coarse lookup, on the training batches and during validation, so it costs no extra
pass over the data. Keras logs it as `within_superclass` and `val_within_superclass`.
"""
from __future__ import annotations

import functools

import numpy as np

from .data import FINE_TO_COARSE

METRIC_NAME = "within_superclass"


@functools.cache
def metric_class():
    """The Keras metric class (built on first use, so importing this module does not import Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="lsc")
    class WithinSuperclassErrors(keras.metrics.Metric):
        """Of the wrong fine predictions so far, the share whose class lies in the true superclass;
        NaN while there is no wrong prediction."""

        def __init__(self, name: str = METRIC_NAME, **kwargs):
            super().__init__(name=name, **kwargs)
            self.errors = self.add_variable(shape=(), initializer="zeros", name="errors")
            self.within = self.add_variable(shape=(), initializer="zeros", name="within")
            self._fine_to_coarse = np.asarray(FINE_TO_COARSE, dtype=np.int32)

        def update_state(self, y_true, y_pred, sample_weight=None):
            lookup = ops.convert_to_tensor(self._fine_to_coarse)
            # Class indices, or one-hot/soft targets (label smoothing, MixUp): their largest entry.
            soft = len(y_true.shape) == 2 and y_true.shape[-1] not in (None, 1)
            true = ops.cast(ops.argmax(y_true, axis=-1) if soft else ops.reshape(y_true, (-1,)), "int32")
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
            wrong = ops.not_equal(true, predicted)
            same_superclass = ops.equal(ops.take(lookup, true), ops.take(lookup, predicted))
            self.errors.assign_add(ops.sum(ops.cast(wrong, "float32")))
            self.within.assign_add(ops.sum(ops.cast(ops.logical_and(wrong, same_superclass), "float32")))

        def result(self):
            return ops.where(self.errors > 0, ops.divide_no_nan(self.within, self.errors), float("nan"))

        def reset_state(self):
            self.errors.assign(0.0)
            self.within.assign(0.0)

    return WithinSuperclassErrors


def metrics_for(label_mode: str) -> list:
    """The metrics a run compiles with: accuracy, and for fine labels the within-superclass share."""
    return ["accuracy", metric_class()()] if label_mode == "fine" else ["accuracy"]
