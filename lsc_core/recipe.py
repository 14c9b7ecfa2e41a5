"""The training recipe's Keras side: the loss, the per-epoch learning rate, reduce-on-plateau
and early stopping.

`make_callback` returns one callback that, at each epoch's end, puts the rate the epoch
started with into the logs (so the store's callback writes it with the epoch), sets the
plateau scale of the schedule (lsc_core.schedules) from the validation accuracies so far,
and ends the run when early stopping's patience is used up. Keras is imported only when
a loss or callback is made.
"""
from __future__ import annotations

from typing import Callable

from . import augment


def soft_labels(config) -> bool:
    """Whether training needs one-hot labels: label smoothing, MixUp or CutMix."""
    return config.label_smoothing > 0 or augment.mixes_labels(config.augment)


def loss_and_metrics(config):
    """(loss, metrics) for `compile`: sparse cross-entropy as the study, or the one-hot form with
    label smoothing; the accuracy metric is named 'accuracy' either way, and fine runs also
    measure the share of errors inside the right superclass (lsc_core.hierarchy)."""
    import keras

    from .hierarchy import metrics_for

    metrics = metrics_for(config.label_mode)
    if soft_labels(config):
        metrics[0] = keras.metrics.CategoricalAccuracy(name="accuracy")
        return keras.losses.CategoricalCrossentropy(label_smoothing=float(config.label_smoothing)), metrics
    return "sparse_categorical_crossentropy", metrics


def early_stop_reason(val_accuracies: list[float], patience: int, planned: int, split: str = "test") -> str | None:
    """Why the run should end now, or None: `patience` epochs have passed since the best
    validation accuracy (a pure function of the accuracies so far, epoch 1 first)."""
    if patience <= 0 or not val_accuracies:
        return None
    best_epoch = max(range(len(val_accuracies)), key=lambda i: (val_accuracies[i], -i)) + 1
    waited = len(val_accuracies) - best_epoch
    if waited < patience or len(val_accuracies) >= planned:
        return None
    return (f"early stopping: {split} accuracy did not improve for {waited} epoch(s) after its best "
            f"({val_accuracies[best_epoch - 1]:.4f} at epoch {best_epoch}); ended after epoch "
            f"{len(val_accuracies)} of {planned}")


def make_callback(config, schedule=None, on_early_stop: Callable[[str], None] | None = None,
                  history: list[float] | None = None):
    """The recipe's Keras callback; list it before the store's callback so the rate is logged.

    `schedule` is the run's `schedules.keras_schedule` (None: a constant rate, no plateau
    scale to set); `history` the validation accuracies of epochs already trained (a
    resumed run), so patience and plateaus continue where they were.
    """
    import keras

    split = "test" if config.validation == "test" else "hold-out"
    from .schedules import plateau_scale

    class RecipeCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.val_accuracies = list(history or [])
            self.stopped_early = False
            self._rate = None
            if schedule is not None and config.plateau_patience:  # a resumed run's rate starts where it was
                schedule.scale.assign(plateau_scale(self.val_accuracies, config.plateau_patience,
                                                    config.plateau_factor))

        def on_epoch_begin(self, epoch, logs=None):
            self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            logs["learning_rate"] = self._rate
            accuracy = logs.get("val_accuracy")
            if accuracy is None or self.model.stop_training:  # a stop request mid-epoch: not a full epoch
                return
            self.val_accuracies.append(float(accuracy))
            if schedule is not None and config.plateau_patience:
                schedule.scale.assign(plateau_scale(self.val_accuracies, config.plateau_patience,
                                                    config.plateau_factor))
            reason = early_stop_reason(self.val_accuracies, config.early_stopping, config.total_epochs, split)
            if reason is not None:
                self.stopped_early = True
                self.model.stop_training = True
                if on_early_stop is not None:
                    on_early_stop(reason)

    return RecipeCallback()
