"""The recipe in real training: each epoch's learning rate stored, early stopping, plateaus, TTA."""
import pytest

from lsc_core import recipe, schedules
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.evaluate import store_predictions
from lsc_core.store import COMPLETED, RUNNING
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def small_config(**changes):
    return RunConfig(layers=SMALL, epochs=3, batch_size=64, learning_rate=3e-3, name="small").replace(**changes)


def test_each_epoch_stores_the_rate_it_started_with(store, tiny_data):
    config = small_config(schedule="cosine", warmup_epochs=1, optimizer="sgd", momentum=0.9, nesterov=True,
                          weight_decay=5e-4, label_smoothing=0.1, augment=("flip", "crop", "cutout", "mixup"))
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None) == (run.status, run.error)
    steps = schedules.steps_per_epoch(config, len(tiny_data.x_train))
    rates = [row["learning_rate"] for row in store.epochs(run_id)]
    assert schedules.epoch_learning_rates(config, steps) == pytest.approx(rates, rel=1e-6)
    assert 3 == len(set(rates))


def test_early_stopping_ends_a_run_that_cannot_improve_as_completed_with_its_reason(store, tiny_data):
    # A rate this small leaves the accuracy where it was: no epoch beats the first.
    config = small_config(epochs=5, learning_rate=1e-9, early_stopping=1)
    run_id = store.create_run(config, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert COMPLETED == run.status
    assert [1, 2] == [row["epoch"] for row in store.epochs(run_id)]
    assert run.end_reason.startswith("early stopping: test accuracy did not improve for 1 epoch(s)")
    assert run.end_reason.endswith("ended after epoch 2 of 5")


def test_early_stop_reason_counts_epochs_since_the_best():
    assert recipe.early_stop_reason([0.1, 0.2, 0.2], patience=2, planned=5) is None
    assert "did not improve for 2 epoch(s) after its best (0.2000 at epoch 2)" in \
        recipe.early_stop_reason([0.1, 0.2, 0.2, 0.1], patience=2, planned=5)
    assert recipe.early_stop_reason([0.3, 0.2], patience=1, planned=2) is None  # the run ends anyway


def test_reduce_on_plateau_lowers_the_next_epochs_rate(store, tiny_data):
    config = small_config(epochs=4, learning_rate=1e-9, plateau_patience=1, plateau_factor=0.5)
    run_id = store.create_run(config, status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    rates = [row["learning_rate"] for row in store.epochs(run_id)]
    # epoch 1 sets the best; each later epoch fails to beat it, so each halves the next one's rate
    assert [1e-9, 1e-9, 0.5e-9, 0.25e-9] == pytest.approx(rates, rel=1e-5)


def test_a_tta_run_stores_its_flip_averaged_accuracy_apart(store, tiny_data):
    run_id = store.create_run(small_config(epochs=1, tta=True), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data, after_training=store_predictions)
    assert 0 <= run.tta_accuracy <= 1
    assert store.load_predictions(run_id) is not None
