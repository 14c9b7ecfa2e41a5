"""Optimizers: one table entry per optimizer, with the settings of a RunConfig it uses.

Weight decay is Keras's decoupled form for every optimizer (each step subtracts
learning rate x weight decay x weight), applied to kernels only: biases and BatchNorm's
scale and shift are left alone, as in the usual CIFAR recipes. Keras is imported only
when an optimizer is built.
"""
from __future__ import annotations

from dataclasses import dataclass

# Variables whose names contain one of these are not decayed (Keras names them so).
NOT_DECAYED = ("bias", "gamma", "beta")


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: its label, its class in keras.optimizers and the RunConfig settings it takes
    beyond the learning rate and weight decay."""

    label: str
    keras_class: str
    settings: tuple[str, ...] = ()


OPTIMIZERS: dict[str, Optimizer] = {
    "adam": Optimizer("Adam", "Adam"),
    "sgd": Optimizer("SGD with momentum (optionally Nesterov)", "SGD", ("momentum", "nesterov")),
    "rmsprop": Optimizer("RMSprop", "RMSprop"),
    "adamw": Optimizer("AdamW (Adam with decoupled weight decay)", "AdamW"),
}


def uses(name: str, setting: str) -> bool:
    """Whether optimizer `name` takes `setting` ('momentum', 'nesterov')."""
    return name in OPTIMIZERS and setting in OPTIMIZERS[name].settings


def make_optimizer(config, learning_rate):
    """The Keras optimizer of `config` at `learning_rate` (a number or a LearningRateSchedule)."""
    import keras

    entry = OPTIMIZERS[config.optimizer]
    options = {setting: getattr(config, setting) for setting in entry.settings}
    # None, not 0, where Keras allows it (AdamW does not): it then skips the decay step.
    weight_decay = float(config.weight_decay) if config.weight_decay or entry.keras_class == "AdamW" else None
    optimizer = getattr(keras.optimizers, entry.keras_class)(learning_rate, weight_decay=weight_decay, **options)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


def check(config) -> list[tuple[str, str]]:
    """(field, problem) for each optimizer setting that cannot be used."""
    problems = []
    if config.optimizer not in OPTIMIZERS:
        problems.append(("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}"))
    wd = config.weight_decay
    if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not 0 <= wd < 1:
        problems.append(("weight_decay", f"must be a number in [0, 1), got {wd!r}"))
    if not isinstance(config.nesterov, bool):
        problems.append(("nesterov", f"must be true or false, got {config.nesterov!r}"))
    elif config.nesterov and config.optimizer in OPTIMIZERS and not uses(config.optimizer, "nesterov"):
        problems.append(("nesterov", f"Nesterov momentum applies to SGD only, not {config.optimizer}"))
    return problems
