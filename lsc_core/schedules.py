"""Learning-rate schedules: one table entry per schedule, each a pure function of the epoch.

The learning rate of every training step is `learning_rate_at(config, t, steps_per_epoch)`
where `t` is the step's position in epochs (step / steps_per_epoch, so 2.5 is half-way
through the third epoch). Nothing depends on what happened before, so a run resumed at
`initial_epoch` continues on exactly the same curve, and the Build page draws the
curve a run will follow before it is launched (no TensorFlow needed for that).

Training feeds the same function to Keras through `keras_schedule`, which tabulates it
once per step and multiplies it by a reduce-on-plateau scale (`plateau_scale`, itself a
pure function of the validation accuracies so far).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

TRAIN_IMAGES = 50_000  # CIFAR-100's training set; a hold-out run keeps 1 - fraction of it
ONECYCLE_START_DIVISOR = 25.0  # one-cycle starts (and warms up from) the peak / 25, as Smith (2018)
ONECYCLE_WARM_SHARE = 0.3  # one-cycle's rise takes 30% of the run unless warm-up epochs are given
DEFAULT_DECAY_PARTS = 3  # step decay without `decay_every`: three equal parts of the run


@dataclass(frozen=True)
class Schedule:
    """One schedule: its label for people and its shape, a factor of the peak learning rate."""

    label: str
    # factor(t, epochs, warmup, config) in (0, 1]: t in epochs since the start; warm-up
    # handled here only where the schedule has its own notion of it (one-cycle)
    factor: Callable[[float, int, float, object], float]
    own_warmup: bool = False


def _constant(t, epochs, warmup, config) -> float:
    return 1.0


def _step(t, epochs, warmup, config) -> float:
    every = decay_every(config)
    return config.decay_factor ** math.floor(t / every)


def _cosine(t, epochs, warmup, config) -> float:
    # Half a cosine from the peak (end of warm-up) down to 0 at the end of the run.
    progress = min(1.0, max(0.0, (t - warmup) / (epochs - warmup)))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _onecycle(t, epochs, warmup, config) -> float:
    # Linear rise from peak/25 to the peak, then linear fall to 0 at the end (airbench's shape).
    rise = warmup if warmup > 0 else ONECYCLE_WARM_SHARE * epochs
    start = 1.0 / ONECYCLE_START_DIVISOR
    if t < rise:
        return start + (1.0 - start) * t / rise
    return max(0.0, (epochs - t) / (epochs - rise))


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule("constant (the study's)", _constant),
    "step": Schedule("step decay (x decay factor every N epochs)", _step),
    "cosine": Schedule("cosine to zero, after a linear warm-up", _cosine),
    "onecycle": Schedule("one-cycle (linear up, linear down)", _onecycle, own_warmup=True),
}


def decay_every(config) -> int:
    """Epochs between step decays: `config.decay_every`, else a third of the run (at least 1)."""
    return config.decay_every or max(1, config.epochs // DEFAULT_DECAY_PARTS)


def learning_rate_at(config, t: float, steps_per_epoch: int = 1) -> float:
    """The learning rate of the step at `t` epochs into the run (0 <= t < config.epochs).

    A linear warm-up over `config.warmup_epochs` goes from one step's share of the peak
    up to the peak (so no step has a zero rate); one-cycle warms up its own way.
    """
    schedule = SCHEDULES[config.schedule]
    warmup = float(config.warmup_epochs)
    factor = schedule.factor(t, config.epochs, warmup, config)
    if warmup > 0 and not schedule.own_warmup and t < warmup:
        factor *= min(1.0, (t + 1.0 / steps_per_epoch) / warmup)
    return config.learning_rate * factor


def steps_per_epoch(config, train_images: int | None = None) -> int:
    """Training steps per epoch of `config` (on CIFAR-100's 50,000 images unless given)."""
    if train_images is None:
        train_images = TRAIN_IMAGES if config.validation == "test" else \
            TRAIN_IMAGES - round(TRAIN_IMAGES * config.holdout_fraction)
    if config.limit:
        train_images = min(train_images, config.limit)
    return max(1, math.ceil(train_images / config.batch_size))


def epoch_learning_rates(config, steps: int | None = None) -> list[float]:
    """The learning rate each epoch starts with (epoch 1 first), as training records it."""
    steps = steps or steps_per_epoch(config)
    return [learning_rate_at(config, epoch, steps) for epoch in range(config.epochs)]


def schedule_curve(config, points_per_epoch: int = 20, steps: int | None = None) -> list[tuple[float, float]]:
    """(epoch, learning rate) samples of the whole run for drawing; epoch is 1-based and
    fractional (1.5 = half-way through the first epoch), ending at the run's last step."""
    steps = steps or steps_per_epoch(config)
    total = config.epochs * points_per_epoch
    samples = []
    for i in range(total + 1):
        t = min(config.epochs * i / total, config.epochs - 1.0 / steps)  # the last step, not past it
        samples.append((1.0 + config.epochs * i / total, learning_rate_at(config, t, steps)))
    return samples


def plateau_scale(val_accuracies: list[float], patience: int, factor: float) -> float:
    """Reduce-on-plateau as a pure function of the validation accuracies so far.

    Each time `patience` epochs pass without a new best, the rate is multiplied by
    `factor` and the count starts again. 1.0 when `patience` is 0 (off).
    """
    if patience <= 0:
        return 1.0
    scale, best, waited = 1.0, -math.inf, 0
    for accuracy in val_accuracies:
        if accuracy > best:
            best, waited = accuracy, 0
            continue
        waited += 1
        if waited >= patience:
            scale *= factor
            waited = 0
    return scale


def check(config) -> list[tuple[str, str]]:
    """(field, problem) for each schedule setting that cannot be used."""
    problems = []
    if config.schedule not in SCHEDULES:
        problems.append(("schedule", f"must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}"))
    warmup = config.warmup_epochs
    if not _whole(warmup) or warmup < 0:
        problems.append(("warmup_epochs", f"must be a whole number >= 0, got {warmup!r}"))
    elif _whole(config.epochs) and warmup >= config.epochs > 0:
        problems.append(("warmup_epochs", f"the warm-up ({warmup} epochs) must be shorter than the run "
                                          f"({config.epochs} epochs)"))
    if config.decay_every is not None and (not _whole(config.decay_every) or config.decay_every < 1):
        problems.append(("decay_every", f"must be a whole number of at least 1 (or empty), got {config.decay_every!r}"))
    if not _number(config.decay_factor) or not 0 < config.decay_factor <= 1:
        problems.append(("decay_factor", f"must be in (0, 1], got {config.decay_factor!r}"))
    return problems


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- Keras --------------------------------------------------------------------------------
def keras_schedule(config, steps: int, start_epoch: int = 0):
    """A Keras LearningRateSchedule giving step s the rate of `learning_rate_at`, times a
    reduce-on-plateau `scale` variable (1 until a plateau callback lowers it).

    The optimizer's step counter starts at 0 in each `fit`; `start_epoch` places step 0
    at that epoch of the run, so a run resumed with a fresh optimizer continues the curve.
    """
    import numpy as np
    import tensorflow as tf
    import keras

    @keras.saving.register_keras_serializable(package="lsc")
    class TabulatedSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """The run's schedule, one entry per step; past the last step the last rate holds."""

        def __init__(self, config_json: str, steps: int, start_epoch: int = 0):
            from .config import RunConfig

            self.config_json, self.steps, self.start_epoch = config_json, steps, start_epoch
            run = RunConfig.from_json(config_json)
            rates = [learning_rate_at(run, step / steps, steps)
                     for step in range(start_epoch * steps, run.epochs * steps)]
            self.table = tf.constant(np.array(rates or [learning_rate_at(run, 0.0, steps)], dtype=np.float32))
            self.scale = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="plateau_scale")

        def __call__(self, step):
            index = tf.minimum(tf.cast(step, tf.int32), tf.shape(self.table)[0] - 1)
            return tf.gather(self.table, index) * self.scale

        def get_config(self):
            return {"config_json": self.config_json, "steps": self.steps, "start_epoch": self.start_epoch}

    return TabulatedSchedule(config.to_json(), steps, start_epoch)
