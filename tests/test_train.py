"""Real Keras training on tiny data: epochs in the store, best model saved, stop, failure."""
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lsc_core.config import LayerSpec, RunConfig, analyze, preset
from lsc_core.model import build_model, load_model
from lsc_core.store import COMPLETED, FAILED, RUNNING, STOPPED
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def small_config(**changes):
    return RunConfig(layers=SMALL, epochs=2, batch_size=32, learning_rate=3e-3, name="small").replace(**changes)


@pytest.mark.parametrize("name", ["seed-part1", "seed-part2-dropout", "seed-part2", "resnet-fast", "resnet9"])
@pytest.mark.parametrize("mode", ["coarse", "fine"])
def test_keras_model_has_the_analyzed_parameter_count(name, mode):
    config = preset(name, label_mode=mode)
    model = build_model(config)
    assert analyze(config).total_params == model.count_params()
    assert [row.output_shape for row in analyze(config).rows][-1] == tuple(model.output_shape[1:])


def test_a_run_trains_logs_every_epoch_and_saves_the_best_model(store, tiny_data):
    run_id = store.create_run(small_config(), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None) == (run.status, run.error)
    epochs = store.epochs(run_id)
    assert [1, 2] == [row["epoch"] for row in epochs]
    assert all(row["seconds"] > 0 and 0 <= row["val_accuracy"] <= 1 for row in epochs)
    best = max(epochs, key=lambda row: (row["val_accuracy"], -row["epoch"]))
    assert (best["epoch"], best["val_accuracy"]) == (run.best_epoch, run.best_val_accuracy)
    assert run.params == analyze(small_config()).total_params
    assert {"tensorflow", "keras", "numpy", "python"} <= set(run.versions)
    assert run.device.startswith(("CPU", "GPU"))
    model = load_model(run.model_path)
    assert model.count_params() == run.params
    # The saved model is the best epoch's: it reproduces that epoch's validation accuracy.
    x, y = tiny_data.x_test.astype("float32"), tiny_data.labels("test", "coarse")
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    assert run.best_val_accuracy == pytest.approx(accuracy, abs=1e-6)


def test_tiny_learnable_data_beats_chance(store, tiny_data):
    run_id = store.create_run(small_config(epochs=8, label_mode="fine"), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert run.best_val_accuracy > 0.1  # chance is 0.01 on 100 classes


def test_stop_request_ends_the_run_after_the_current_batch(store, tiny_data):
    stop = threading.Event()
    config = small_config(epochs=50, batch_size=8)
    run_id = store.create_run(config, status=RUNNING)

    def stop_after_first_epoch(store_, run_id_, model, data, split):  # pragma: no cover - not reached
        raise AssertionError("a stopped run is not evaluated")

    timer = threading.Timer(3.0, stop.set)
    timer.start()
    run = train_run(store, run_id, load_data=lambda: tiny_data, stop_event=stop,
                    after_training=stop_after_first_epoch)
    timer.cancel()
    assert STOPPED == run.status
    assert len(store.epochs(run_id)) < 50


def test_stop_requested_through_the_store_also_stops(store, tiny_data):
    run_id = store.create_run(small_config(epochs=50, batch_size=8), status=RUNNING)
    threading.Timer(3.0, store.request_stop, args=[run_id]).start()
    assert STOPPED == train_run(store, run_id, load_data=lambda: tiny_data).status


def test_a_failing_run_is_recorded_with_its_message(store):
    def broken_loader():
        raise OSError("disk on fire")

    run_id = store.create_run(small_config(), status=RUNNING)
    run = train_run(store, run_id, load_data=broken_loader)
    assert (FAILED, "OSError: disk on fire") == (run.status, run.error)


def test_holdout_validation_and_limit(store, tiny_data):
    config = small_config(epochs=1, validation="holdout", holdout_fraction=0.25, limit=100)
    run_id = store.create_run(config, status=RUNNING)
    seen = {}
    train_run(store, run_id, load_data=lambda: tiny_data,
              after_training=lambda s, r, m, d, split: seen.update(train=len(split.x_train), val=len(split.x_val)))
    assert {"train": 100, "val": 100} == seen


def test_any_run_name_builds(store, tiny_data):
    run_id = store.create_run(small_config(epochs=1, name="a/b c:d"), status=RUNNING)
    assert COMPLETED == train_run(store, run_id, load_data=lambda: tiny_data).status


def test_a_failing_after_training_step_keeps_the_run_completed(store, tiny_data):
    def broken_hook(*args):
        raise MemoryError("no room for predictions")

    run_id = store.create_run(small_config(epochs=1), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data, after_training=broken_hook)
    assert (COMPLETED, None) == (run.status, run.error)
    assert Path(run.model_path).exists()


def test_a_stop_ends_a_long_epoch_midway_and_keeps_no_partial_epoch(store, tmp_path):
    from cifar_files import synthetic_arrays, write_npz

    from lsc_core.data import load_cifar100

    data = load_cifar100(write_npz(tmp_path / "more.npz", synthetic_arrays(n_train_per_class=40)))
    run_id = store.create_run(small_config(epochs=1, batch_size=1), status=RUNNING)  # 4,000 steps

    def stop_once_training():
        deadline = time.time() + 60
        while time.time() < deadline:
            progress = store.get_run(run_id).progress or {}
            if progress.get("phase") == "training" and (progress.get("batch") or 0) > 0:
                seen.append(progress)
                store.request_stop(run_id)
                return
            time.sleep(0.05)

    seen = []
    watcher = threading.Thread(target=stop_once_training)
    watcher.start()
    run = train_run(store, run_id, load_data=lambda: data)
    watcher.join()
    assert (STOPPED, []) == (run.status, store.epochs(run_id))
    assert seen and seen[0]["batch"] < seen[0]["batches"] == 4000


def test_a_stop_while_training_ends_the_fit_without_validating_the_dropped_epoch(store, tiny_data):
    """Keras validates an epoch even after stop_training is set; the cut epoch is dropped anyway,
    and its validation would first trace the test step (seconds between the click and the end)."""
    import keras
    import tensorflow as tf

    from lsc_core.model import compile_model
    from lsc_core.train import EpochCut, make_callback

    config = small_config(epochs=2)
    run_id = store.create_run(config, status=RUNNING)
    model = build_model(config)
    compile_model(model, config)
    saved = make_callback(store, run_id, store.artifacts / str(run_id) / "best.keras", config.epochs)
    x, y = tiny_data.x_train.astype("float32"), tiny_data.labels("train", "coarse")
    x_val, y_val = tiny_data.x_test.astype("float32"), tiny_data.labels("test", "coarse")
    pulled = []  # validation batches Keras asked for

    def validation_batches():
        for start in range(0, len(x_val), 32):
            pulled.append(start)
            yield x_val[start:start + 32], y_val[start:start + 32]

    validation = tf.data.Dataset.from_generator(validation_batches, output_signature=(
        tf.TensorSpec((None, *x_val.shape[1:]), tf.float32), tf.TensorSpec((None,), tf.as_dtype(y_val.dtype))))

    class StopAtSecondBatch(keras.callbacks.Callback):  # as the Stop button, deterministically
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                saved.stop()

    with pytest.raises(EpochCut):
        model.fit(x, y, batch_size=8, epochs=config.epochs, validation_data=validation, verbose=0,
                  callbacks=[StopAtSecondBatch(), saved])
    assert ([], []) == (pulled, store.epochs(run_id))


def test_a_stop_while_validating_ends_the_run_and_keeps_no_partly_validated_epoch(store, tmp_path):
    from cifar_files import synthetic_arrays, write_npz

    from lsc_core.data import load_cifar100

    data = load_cifar100(write_npz(tmp_path / "long-test.npz", synthetic_arrays(n_test_per_class=40)))
    # 200 training steps, then 4,000 validation steps of one image: a stop lands while validating.
    run_id = store.create_run(small_config(epochs=3, batch_size=1, limit=200), status=RUNNING)
    stop = threading.Event()
    seen = []

    def stop_once_validating():
        deadline = time.time() + 60
        while time.time() < deadline and not seen:
            progress = store.get_run(run_id).progress or {}
            if progress.get("phase") == "validating":
                seen.append(progress)
                stop.set()
            time.sleep(0.02)

    watcher = threading.Thread(target=stop_once_validating)
    watcher.start()
    run = train_run(store, run_id, load_data=lambda: data, stop_event=stop)
    watcher.join()
    assert seen, "the run was never seen validating"
    # Before, validation went on to its end and the epoch was kept.
    assert (STOPPED, []) == (run.status, store.epochs(run_id))


def test_each_epoch_records_images_per_second_of_training_and_validation(store, tiny_data):
    run_id = store.create_run(small_config(epochs=1), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    epoch = store.epochs(run_id)[0]
    assert epoch["train_images_per_s"] > 0 and epoch["val_images_per_s"] > 0
    # Each phase takes part of the epoch's wall time, so each runs faster than the whole.
    assert epoch["train_images_per_s"] > len(tiny_data.x_train) / epoch["seconds"]


def test_the_file_on_disk_is_the_best_epoch_at_every_epoch_end(store, tiny_data):
    """A run killed after any epoch leaves the store's best epoch on disk, not an older one."""
    import keras

    from lsc_core.model import compile_model
    from lsc_core.train import make_callback

    config = small_config(epochs=6, learning_rate=1e-2)
    run_id = store.create_run(config, status=RUNNING)
    model, path = build_model(config), store.artifacts / str(run_id) / "best.keras"
    compile_model(model, config)
    saved = make_callback(store, run_id, path, config.epochs)
    seen = []

    class Checker(keras.callbacks.Callback):  # runs after the store's callback, as a kill would find things
        def on_epoch_end(self, epoch, logs=None):
            on_disk = load_model(path).get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(saved.best_weights, on_disk))
            run = store.get_run(run_id)
            assert run.best_epoch == run.model_epoch  # and the store says which epoch the file is
            seen.append(run.best_epoch)

    x, y = tiny_data.x_train.astype("float32"), tiny_data.labels("train", "coarse")
    x_val, y_val = tiny_data.x_test.astype("float32"), tiny_data.labels("test", "coarse")
    model.fit(x, y, batch_size=32, epochs=config.epochs, validation_data=(x_val, y_val), verbose=0,
              callbacks=[saved, Checker()])
    assert 6 == len(seen) and len(set(seen)) > 1  # several improvements, each on disk at its epoch's end
