"""Errors inside the right superclass: the in-graph Keras metric, its epochs column, its curve panel."""
import numpy as np
import pytest

from old_stores import OLD_EPOCH, OLD_RUN, write_migration_4_store
from lsc_core import charts, hierarchy, views
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.data import FINE_TO_COARSE
from lsc_core.evaluate import within_superclass_error_share
from lsc_core import store as store_module
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def _one_hot(classes, n=100):
    out = np.zeros((len(classes), n), dtype=np.float32)
    out[np.arange(len(classes)), classes] = 1.0
    return out


def test_the_metric_counts_wrong_predictions_that_stay_in_the_superclass():
    fish = [c for c in range(100) if FINE_TO_COARSE[c] == 1]
    truth = np.array([fish[0], fish[0], fish[1], fish[2], 0])
    predicted = np.array([fish[0], fish[3], 0, fish[4], 0])  # right, inside, outside, inside, right
    metric = hierarchy.metric_class()()
    metric.update_state(truth[:3], _one_hot(predicted[:3]))  # accumulates over batches
    metric.update_state(truth[3:], _one_hot(predicted[3:]))
    assert pytest.approx(2 / 3) == float(metric.result())
    assert within_superclass_error_share(truth, predicted) == pytest.approx(float(metric.result()))
    metric.reset_state()
    metric.update_state(truth[:1], _one_hot(predicted[:1]))  # no error yet: undefined, not 0
    assert np.isnan(float(metric.result()))
    assert ["accuracy"] == hierarchy.metrics_for("coarse")


def test_a_fine_run_records_it_every_epoch_and_the_run_chart_draws_it(store, tiny_data):
    config = RunConfig(layers=SMALL, label_mode="fine", epochs=2, batch_size=64, learning_rate=3e-3)
    run_id = store.create_run(config, status=RUNNING)
    assert "completed" == train_run(store, run_id, load_data=lambda: tiny_data).status
    epochs = store.epochs(run_id)
    assert 2 == len(epochs)
    for epoch in epochs:
        assert 0.0 <= epoch["within_superclass"] <= 1.0 and 0.0 <= epoch["val_within_superclass"] <= 1.0
    curves = views.curves(store, [run_id])
    assert {"train", "test"} == set(curves[curves["metric"] == "within_superclass"]["split"])
    panels = charts.run_curves_chart(curves, 1).to_dict()["concat"]
    assert ["Loss (cross-entropy)", "Accuracy", "Errors inside the right superclass"] == [p["title"] for p in panels]
    assert b"val_within_superclass" in views.curves_csv(store, run_id)


def test_a_coarse_run_has_no_such_column_value_nor_panel(store, tiny_data):
    config = RunConfig(layers=SMALL, label_mode="coarse", epochs=1, batch_size=64)
    run_id = store.create_run(config, status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    assert [(None, None)] == [(e["within_superclass"], e["val_within_superclass"]) for e in store.epochs(run_id)]
    assert 2 == len(charts.run_curves_chart(views.curves(store, [run_id])).to_dict()["concat"])


def test_a_migration_4_store_gains_the_columns_and_keeps_its_epochs(tmp_path):
    path = write_migration_4_store(tmp_path / "v4.sqlite", runs=[OLD_RUN], epochs=[OLD_EPOCH])
    upgraded = Store(path)
    assert [(2.0, None, None)] == [(e["loss"], e["within_superclass"], e["val_within_superclass"])
                                   for e in upgraded.epochs(1)]
    store_module._migration_within_superclass(upgraded.db)  # safe to run again: adds only what is missing
    upgraded.log_epoch(1, 2, {"loss": 1.0, "within_superclass": 0.4, "val_within_superclass": float("nan")}, 3.0)
    assert (0.4, None) == (upgraded.epochs(1)[1]["within_superclass"], upgraded.epochs(1)[1]["val_within_superclass"])
