"""Measured training throughput, and the time estimates made from it (Launch, time left).

Throughputs are measured, never assumed: from a run's own finished epochs, else from
this device's recent runs of a similar size. Where epochs record their phases' images
per second (store columns train_images_per_s, val_images_per_s), an epoch's time is
its training images at the one rate plus its validation images at the other. For
older epochs, which only record their seconds (training and validation together),
work is counted in training-image equivalents: a validation image costs about a third
of a training image (a forward pass only, where training adds the backward pass and
the update), and throughput is work / seconds.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable

from .config import MAX_LIMIT, ConfigError, RunConfig, analyze
from .store import ACTIVE_STATES, FAILED, QUEUED, Run, Store

TEST_IMAGES = 10_000  # CIFAR-100's test set: the default validation split
VALIDATION_COST = 1 / 3  # a validation image's cost in training images (forward pass only)
SIMILAR_PARAMS = 4.0  # another run is "of similar size" within this factor of parameters
RECENT_RUNS = 5  # how many of the newest similar runs a speed is measured from
CONFIRM_OVER_S = 3600  # a launch estimated to take longer than this asks for confirmation


def epoch_images(config: RunConfig) -> tuple[int, int]:
    """(training images, validation images) one epoch of `config` goes through."""
    train = min(config.limit or MAX_LIMIT, MAX_LIMIT)
    if config.validation == "holdout":
        held = round(train * config.holdout_fraction)
        return train - held, held
    return train, TEST_IMAGES


def epoch_work(config: RunConfig) -> float:
    """One epoch's work in training-image equivalents (validation counted at VALIDATION_COST)."""
    train, validation = epoch_images(config)
    return train + validation * VALIDATION_COST


def input_size(config: RunConfig) -> int:
    """Side in pixels of the images the network trains on (32, or a backbone's upscaled size)."""
    return config.backbone.image_size if config.backbone is not None else 32


@dataclass(frozen=True)
class Throughput:
    """A measured speed and where it was measured."""

    images_per_s: float  # training-image equivalents per second, from epoch seconds
    basis: str  # e.g. "this run's 3 epochs", "runs 12, 15 on this device"
    train_images_per_s: float | None = None  # each phase's own rate, where the epochs recorded them
    val_images_per_s: float | None = None

    def epoch_seconds(self, config: RunConfig) -> float:
        """How long one epoch of `config` takes at this throughput."""
        if self.train_images_per_s and self.val_images_per_s:
            train, validation = epoch_images(config)
            return train / self.train_images_per_s + validation / self.val_images_per_s
        return epoch_work(config) / self.images_per_s


def run_throughput(config: RunConfig, epochs: Iterable[dict]) -> Throughput | None:
    """The speed of a run over its finished epochs; None before its first epoch ends."""
    epochs = [row for row in epochs if row.get("seconds")]
    if not epochs:
        return None
    seconds = [row["seconds"] for row in epochs]
    return Throughput(epoch_work(config) * len(seconds) / sum(seconds),
                      f"this run's {len(seconds)} epoch{'s' if len(seconds) > 1 else ''}",
                      _median(row.get("train_images_per_s") for row in epochs),
                      _median(row.get("val_images_per_s") for row in epochs))


def _median(values: Iterable[float | None]) -> float | None:
    """The median of the values recorded (None where none was)."""
    recorded = [value for value in values if value]
    return statistics.median(recorded) if recorded else None


def _params(config: RunConfig) -> int | None:
    analysis = analyze(config)
    return analysis.total_params if analysis.ok else None


def similar_throughput(store: Store, config: RunConfig, device: str | None = None,
                       exclude: int | None = None) -> Throughput | None:
    """This device's speed for a network like `config`: the median over the RECENT_RUNS newest
    runs with finished epochs, the same input size and parameters within SIMILAR_PARAMS of
    it (run `exclude` left out). None where no such run has been measured."""
    params = _params(config)
    if not params:
        return None
    measured_runs, used = [], []
    for run in store.list_runs():  # newest first
        if run.id == exclude or run.status in (QUEUED, FAILED) or not run.params:
            continue
        if device and run.device and run.device != device:
            continue
        other = run.config
        if other is None or input_size(other) != input_size(config):
            continue
        if not 1 / SIMILAR_PARAMS <= run.params / params <= SIMILAR_PARAMS:
            continue
        measured = run_throughput(other, store.epochs(run.id))
        if measured is None:
            continue
        measured_runs.append(measured)
        used.append(run.id)
        if len(used) == RECENT_RUNS:
            break
    if not measured_runs:
        return None
    return Throughput(statistics.median(m.images_per_s for m in measured_runs),
                      f"run{'s' if len(used) > 1 else ''} {', '.join(map(str, sorted(used)))} on this device",
                      _median(m.train_images_per_s for m in measured_runs),
                      _median(m.val_images_per_s for m in measured_runs))


@dataclass(frozen=True)
class Estimate:
    """The work a launch queues and how long it should take on this device."""

    runs: int
    epochs: int  # epochs over all runs
    images: int  # training images over all epochs of all runs
    seconds: float | None  # None when some run's speed has never been measured here
    unmeasured: int  # runs with no measured speed of a similar network
    basis: str  # where the speed comes from

    @property
    def long(self) -> bool:
        """Long enough that a launch should ask first (CONFIRM_OVER_S)."""
        return self.seconds is not None and self.seconds > CONFIRM_OVER_S

    def describe(self) -> str:
        """'2 runs x 5 epochs x 50,000 images = 500,000 training images; about 1h 05m at 130 images/s
        (measured: runs 3, 4 on this device)'."""
        from .views import format_duration

        per_run = self.epochs // self.runs if self.runs and self.epochs % self.runs == 0 else None
        per_epoch = self.images // self.epochs if self.epochs and self.images % self.epochs == 0 else None
        if per_run is not None and per_epoch is not None:
            work = (f"{self.runs:,} run{'s' if self.runs != 1 else ''} x {per_run:,} epoch"
                    f"{'s' if per_run != 1 else ''} x {per_epoch:,} images = {self.images:,} training images")
        else:
            work = f"{self.runs:,} runs, {self.epochs:,} epochs, {self.images:,} training images in all"
        if self.seconds is None:
            missing = "its network" if self.runs == 1 else f"{self.unmeasured} of these networks"
            return f"{work}; no time estimate yet: no run of a size like {missing} has been measured on this device"
        return f"{work}; about {format_duration(self.seconds)} (measured: {self.basis})"


def estimate(store: Store, configs: Iterable[RunConfig], device: str | None = None) -> Estimate:
    """The work and time of training `configs` one after another on this device."""
    configs = list(configs)
    seconds, unmeasured, bases = 0.0, 0, []
    for config in configs:
        measured = similar_throughput(store, config, device)
        if measured is None:
            unmeasured += 1
            continue
        seconds += measured.epoch_seconds(config) * config.total_epochs
        bases.append(measured.basis)
    return Estimate(runs=len(configs), epochs=sum(c.total_epochs for c in configs),
                    images=sum(epoch_images(c)[0] * c.total_epochs for c in configs),
                    seconds=None if unmeasured else seconds, unmeasured=unmeasured,
                    basis="; ".join(dict.fromkeys(bases)))


def confirm_reasons(estimate: Estimate, repeats: str | None = None) -> list[str]:
    """Why a launch should ask before it queues: it would take over CONFIRM_OVER_S, or it
    repeats work already queued (`repeats` says which). Empty: launch at once."""
    from .views import format_duration

    reasons = [f"it should take about {format_duration(estimate.seconds)}"] if estimate.long else []
    return reasons + ([repeats] if repeats else [])


def queued_twin(store: Store, config: RunConfig) -> Run | None:
    """A queued or running run with exactly this config (its name aside), if there is one."""
    wanted = config.replace(name=None).to_dict()
    for run in store.list_runs():
        if run.status in ACTIVE_STATES:
            other = run.config
            if other is not None and other.replace(name=None).to_dict() == wanted:
                return run
    return None
