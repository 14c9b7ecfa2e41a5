"""How fast a run trains: mixed precision, XLA, steps per execution, data on the device, replicas.

A run's config asks for each setting (`config.SpeedSettings`: on, off, or None for
automatic); `plan_speed` decides, on the devices TensorFlow sees, what the run really
trains with (`SpeedPlan`, recorded in the store). Automatic means: everything on
when there is a GPU. On a CPU only several steps per execution: measured on the 2-core
machine (seed-part1, 10,000 images, one process, alternated, machine loaded), 8 steps
per call trained 1.38x the images/s of 1, while XLA was 4.6x slower and data on the
device 1.3x slower (the input pipeline already runs in host memory).
With several replicas a step runs once per call: Keras 3.15's multi-step loop fails
under MirroredStrategy (InvalidArgumentError in its while loop, seen on two logical
CPUs), so more steps per call are refused there.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .config import ConfigError, SpeedSettings
from .runtime import configure_device, import_tensorflow

# Steps run inside one call from Python on a GPU: a step of the study's networks takes
# about a millisecond there, as long as Python's own work between steps, so one call per
# step would leave the GPU idle half the time. Progress and stops still come every 16 steps.
GPU_STEPS_PER_EXECUTION = 16
# On a CPU a step of the study's networks takes ~30 ms, but Keras's Python work around each
# step (callback dispatch, iterator, function call) still costs several percent on 2 busy
# cores; 8 steps per call leave progress and stops every ~0.3 s.
CPU_STEPS_PER_EXECUTION = 8


@dataclass(frozen=True)
class SpeedPlan:
    """What a run trains with, decided on this machine's devices."""

    device: str  # e.g. "GPU: NVIDIA H100 80GB HBM3 (x2)" or "CPU: x86_64 (2 cores)"
    on_gpu: bool
    mixed_precision: bool
    xla: bool
    steps_per_execution: int
    data_on_device: bool
    replicas: int
    batch_size: int  # in total, over all replicas (the config's batch size)

    @property
    def batch_per_replica(self) -> int:
        return self.batch_size // self.replicas

    def columns(self) -> dict:
        """The settings as the store records them (SPEED_COLUMNS)."""
        return {"mixed_precision": self.mixed_precision, "xla": self.xla,
                "steps_per_execution": self.steps_per_execution, "data_on_device": self.data_on_device,
                "replicas": self.replicas}

    def describe(self) -> str:
        """One line, e.g. 'mixed precision, XLA, 16 steps per call, data on device, batch 256 (128 x 2 replicas)'."""
        return describe_speed(self.columns(), self.batch_size)


def describe_speed(columns: dict, batch_size: int | None) -> str:
    """One line for a run's recorded speed settings (store columns); '' where none were recorded."""
    if columns.get("replicas") is None:
        return ""
    parts = [name for key, name in (("mixed_precision", "mixed precision"), ("xla", "XLA"),
                                    ("data_on_device", "data on device")) if columns.get(key)]
    steps = columns.get("steps_per_execution") or 1
    if steps > 1:
        parts.append(f"{steps} steps per call")
    replicas = columns["replicas"]
    if batch_size and replicas > 1:
        parts.append(f"batch {batch_size} ({batch_size // replicas} x {replicas} replicas)")
    elif batch_size:
        parts.append(f"batch {batch_size}")
    return ", ".join(parts) or "defaults"


def plan_speed(settings: SpeedSettings, batch_size: int) -> SpeedPlan:
    """The settings a run trains with here; ConfigError where the machine cannot give them
    (more replicas than devices, a batch that does not split evenly over them)."""
    device = configure_device()
    tf = _tf()
    gpus = len(tf.config.list_logical_devices("GPU"))
    on_gpu = gpus > 0

    def choose(asked, automatic):
        return automatic if asked is None else asked

    available = gpus if on_gpu else len(tf.config.list_logical_devices("CPU"))
    replicas = choose(settings.replicas, gpus if on_gpu else 1)
    if replicas > available:
        kind = "GPU" if on_gpu else "CPU"
        raise ConfigError(f"speed: {replicas} replicas asked, but TensorFlow sees {available} {kind} device(s)",
                          field_name="replicas")
    steps = choose(settings.steps_per_execution, 1 if replicas > 1 else
                   GPU_STEPS_PER_EXECUTION if on_gpu else CPU_STEPS_PER_EXECUTION)
    if replicas > 1 and steps > 1:
        raise ConfigError(f"speed: {steps} steps per execution with {replicas} replicas fails in this Keras "
                          "version; use 1 step per execution (or one replica)", field_name="steps_per_execution")
    if batch_size % replicas:
        raise ConfigError(f"speed: batch size {batch_size} does not split evenly over {replicas} replicas",
                          field_name="replicas")
    return SpeedPlan(device=device, on_gpu=on_gpu,
                     mixed_precision=choose(settings.mixed_precision, on_gpu),
                     xla=choose(settings.xla, on_gpu),
                     steps_per_execution=steps,
                     data_on_device=choose(settings.data_on_device, on_gpu),
                     replicas=replicas, batch_size=batch_size)


def strategy(plan: SpeedPlan):
    """tf.distribute.MirroredStrategy over the plan's devices when it has several replicas,
    else TensorFlow's default strategy (one device, no copies)."""
    tf = _tf()
    if plan.replicas == 1:
        return tf.distribute.get_strategy()
    kind = "GPU" if plan.on_gpu else "CPU"
    devices = [device.name for device in tf.config.list_logical_devices(kind)[:plan.replicas]]
    return tf.distribute.MirroredStrategy(devices)


@contextlib.contextmanager
def precision(plan: SpeedPlan):
    """Layers built inside compute in float16 with float32 weights when the plan says so.

    Keras keeps its dtype policy per thread, so this leaves the dashboard's other threads
    (pages loading models for prediction) in float32. The model's softmax head is always
    float32 (model.py): float16 probabilities would round small ones to 0 and the loss to inf.
    """
    keras = import_tensorflow()
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if plan.mixed_precision else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _tf():
    import_tensorflow()
    import tensorflow as tf

    return tf
