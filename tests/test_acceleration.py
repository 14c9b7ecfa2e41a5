"""The speed settings: mixed precision and XLA on CPU, MirroredStrategy over two logical CPUs,
what a run records, and the checks that need no machine."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lsc_core.config import ConfigError, RunConfig, SpeedSettings, analyze
from lsc_core.model import build_model, load_model
from lsc_core.store import COMPLETED, RUNNING
from lsc_core.train import train_run
from test_train import small_config

REPO = Path(__file__).resolve().parent.parent


def test_speed_settings_round_trip_and_default_to_automatic():
    config = small_config(speed=SpeedSettings(mixed_precision=False, xla=True, steps_per_execution=4, replicas=2))
    assert config == RunConfig.from_json(config.to_json())
    assert SpeedSettings() == RunConfig.from_json("{}").speed  # configs stored before speed settings


@pytest.mark.parametrize("speed, message", [
    (SpeedSettings(replicas=3), "batch size 32 does not split evenly over 3 replicas"),
    (SpeedSettings(steps_per_execution=0), "steps_per_execution must be a whole number from 1 to 1000, got 0"),
])
def test_impossible_speed_settings_are_refused_before_training(speed, message):
    assert [message] == [str(e).removeprefix("speed: ") for e in analyze(small_config(speed=speed)).errors]


def test_a_wrongly_typed_speed_setting_is_one_clear_error():
    with pytest.raises(ConfigError, match="speed: xla must be true or false"):
        RunConfig.from_dict({"speed": {"xla": "yes"}})


def test_mixed_precision_computes_in_float16_with_a_float32_head():
    from lsc_core import acceleration as speed

    plan = speed.SpeedPlan(device="CPU", on_gpu=False, mixed_precision=True, xla=False, steps_per_execution=1,
                           data_on_device=False, replicas=1, batch_size=32)
    with speed.precision(plan):
        model = build_model(small_config())
    assert {"float16"} == {layer.compute_dtype for layer in model.layers[2:-1]}
    assert ("float32", "float32") == (model.layers[-1].compute_dtype, model.layers[-1].variable_dtype)
    assert "float32" == build_model(small_config()).layers[2].compute_dtype  # the policy did not leak


def test_a_run_with_mixed_precision_xla_and_steps_per_execution_trains_on_cpu(store, tiny_data):
    speed = SpeedSettings(mixed_precision=True, xla=True, steps_per_execution=3)
    run_id = store.create_run(small_config(speed=speed), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None) == (run.status, run.error)
    assert {"mixed_precision": 1, "xla": 1, "steps_per_execution": 3, "data_on_device": 0, "replicas": 1} == \
        run.speed
    assert 2 == len(store.epochs(run_id))
    saved = load_model(run.model_path)  # saved through a float32 twin: predicts anywhere at full precision
    assert {"float32"} == {layer.compute_dtype for layer in saved.layers}


def test_a_run_with_its_data_on_the_device_trains_with_augmentation_and_saves_its_best(store, tiny_data):
    speed = SpeedSettings(data_on_device=True, xla=True, steps_per_execution=2)
    # The menu's operations run inside the training step, MixUp on one-hot labels with smoothing.
    config = small_config(epochs=3, augment=("flip", "crop", "mixup"), label_smoothing=0.1, speed=speed)
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None, 1) == (run.status, run.error, run.data_on_device)
    epochs = store.epochs(run_id)
    assert 3 == len(epochs) and all(row["train_images_per_s"] > 0 for row in epochs)
    assert epochs[-1]["loss"] < epochs[0]["loss"]  # it learns from the gathered batches
    # The saved model is the best epoch's: it reproduces that epoch's validation accuracy.
    x, y = tiny_data.x_test.astype("float32"), tiny_data.labels("test", "coarse")
    accuracy = float(np.mean(np.argmax(load_model(run.model_path).predict(x, verbose=0), axis=1) == y))
    assert run.best_val_accuracy == pytest.approx(accuracy, abs=1e-6)


def test_device_batches_gather_the_split_in_an_order_set_by_the_seed_and_the_epoch(tiny_data):
    from lsc_core.data import epoch_variable, make_dataset, split_data
    from lsc_core.device_data import device_fed

    split = split_data(tiny_data, "fine", limit=100)
    model = build_model(small_config(label_mode="fine"))
    epoch = epoch_variable()
    trainer, train_ds, val_ds = device_fed(model, split, 32, seed=3, epoch=epoch)

    def order(number, dataset=train_ds):
        epoch.assign(number)
        return [int(i) for batch in dataset for i in batch]

    first, second = order(0), order(1)
    assert sorted(first) == sorted(second) == list(range(100)) and first != second
    assert first == order(0)  # a resumed run's stream serves its epoch as the first run did
    # The same order as tf.data's path, whose labels here are the indices.
    host = make_dataset(split.x_train, np.arange(100), 32, shuffle=True, seed=3, epoch=epoch)
    assert second == order(1, host.map(lambda images, labels: labels))
    assert list(range(len(split.x_val))) == [int(i) for batch in val_ds for i in batch]
    images, labels = trainer._splits["train"].batch(np.array([5, 7]))
    assert np.array_equal(split.x_train[[5, 7]].astype("float32"), images.numpy())
    assert np.array_equal(split.y_train[[5, 7]], labels.numpy())
    assert len(model.weights) == len(trainer.weights)  # the held images are not weights


def test_on_a_cpu_automatic_means_every_speed_setting_off_but_steps_per_execution(store, tiny_data):
    run_id = store.create_run(small_config(epochs=1), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert {"mixed_precision": 0, "xla": 0, "steps_per_execution": 8, "data_on_device": 0, "replicas": 1} == \
        run.speed


def test_more_replicas_than_devices_fails_the_run_with_the_reason(store, tiny_data):
    run_id = store.create_run(small_config(epochs=1, speed=SpeedSettings(replicas=2)), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert "failed" == run.status and "2 replicas asked, but TensorFlow sees 1 CPU device" in run.error


# Logical devices must be set before TensorFlow initialises, hence a fresh process.
MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from lsc_core.config import LayerSpec, RunConfig, SpeedSettings
    from lsc_core.data import load_cifar100
    from lsc_core.store import RUNNING, Store
    from lsc_core.train import train_run
    from lsc_core import acceleration as speed
    layers = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
              LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
    config = RunConfig(layers=layers, epochs=1, batch_size=32, limit=64, augment=("flip", "crop"),
                       speed=SpeedSettings(replicas=2, data_on_device=True))
    plan = speed.plan_speed(config.speed, config.batch_size)
    assert isinstance(speed.strategy(plan), tf.distribute.MirroredStrategy)
    try:  # Keras 3.15's multi-step loop fails under MirroredStrategy: refused with the reason
        speed.plan_speed(SpeedSettings(replicas=2, steps_per_execution=2), 32)
        raise AssertionError("2 steps per execution with 2 replicas was accepted")
    except Exception as exc:
        assert "2 steps per execution with 2 replicas fails" in str(exc), exc
    store = Store(sys.argv[3])
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: load_cifar100(sys.argv[2]))
    print(json.dumps({"status": run.status, "error": run.error, "replicas": run.replicas,
                      "per_replica": plan.batch_per_replica, "steps": [row["train_images_per_s"] > 0 for row in store.epochs(run_id)],
                      "describe": plan.describe()}))
""")


def test_a_run_trains_with_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_npz):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(REPO), str(tiny_npz), str(tmp_path / "runs.sqlite")],
                            capture_output=True, text=True, timeout=300)
    assert 0 == result.returncode, result.stderr[-2000:]
    assert {"status": "completed", "error": None, "replicas": 2, "per_replica": 16, "steps": [True],
            "describe": "data on device, batch 32 (16 x 2 replicas)"} == json.loads(result.stdout.strip().splitlines()[-1])
