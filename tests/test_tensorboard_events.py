"""TensorBoard reads our runs: event files read back by TensorBoard's own loader equal the store."""
import numpy as np
import pytest

from lsc_core import tensorboard_events
from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig, preset
from lsc_core.store import COMPLETED, RUNNING, Store
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def tensorboard_runs(logdir):
    """{run name: accumulator} as `tensorboard --logdir` loads them."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return {name: multiplexer.GetAccumulator(name) for name in multiplexer.Runs()}


def scalars(accumulator, tag):
    from tensorboard.util import tensor_util

    return [(event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
            for event in accumulator.Tensors(tag)]


def test_a_trained_run_writes_events_equal_to_its_epochs(store, tiny_data):
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=2, batch_size=32, name="tiny"), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    runs = tensorboard_runs(store.artifacts)
    assert {f"{run_id}/tensorboard/tiny/train", f"{run_id}/tensorboard/tiny/validation"} == set(runs)
    epochs = store.epochs(run_id)
    train, validation = runs[f"{run_id}/tensorboard/tiny/train"], runs[f"{run_id}/tensorboard/tiny/validation"]
    for column, (accumulator, tag) in {"loss": (train, "epoch_loss"), "accuracy": (train, "epoch_accuracy"),
                                       "seconds": (train, "epoch_seconds"),
                                       "val_loss": (validation, "epoch_loss"),
                                       "val_accuracy": (validation, "epoch_accuracy")}.items():
        expected = [(row["epoch"], float(np.float32(row[column]))) for row in epochs]
        assert expected == scalars(accumulator, tag), column


def test_search_trials_carry_their_hyperparameters(store):
    from tensorboard.plugins.hparams import plugin_data_pb2

    search_id = store.create_search("s", "{}")
    trial = store.create_trial_once(preset("seed-part1", learning_rate=3e-3), search_id)
    store.log_epoch(trial, 1, {"loss": 2.5, "accuracy": 0.2, "val_loss": 2.6, "val_accuracy": 0.19}, 3.0)
    logdir = tensorboard_events.write_run_events(store, trial)
    name = store.get_run(trial).name
    session = tensorboard_runs(store.artifacts)[f"{trial}/tensorboard/{logdir.name}"]
    content = session.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert name == info.group_name
    assert pytest.approx(3e-3) == info.hparams["learning_rate"].number_value
    assert "adam" == info.hparams["optimizer"].string_value
    assert 32 == info.hparams["layer1.filters"].number_value


def test_rewriting_follows_the_store_and_leaves_one_copy(store):
    run_id = store.create_run(preset("seed-part1"), status=RUNNING)
    store.log_epoch(run_id, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.1}, 5.0)
    tensorboard_events.write_run_events(store, run_id)
    store.log_epoch(run_id, 2, {"loss": 2.0, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.2}, 5.0)
    logdir = tensorboard_events.write_run_events(store, run_id)
    assert [logdir] == list(logdir.parent.iterdir())
    train = tensorboard_runs(store.artifacts)[f"{run_id}/tensorboard/{logdir.name}/train"]
    assert [(1, 3.0), (2, 2.0)] == scalars(train, "epoch_loss")


def test_tensorboard_export_command_writes_older_runs(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    store = Store(db)
    ids = [store.create_run(preset("seed-part1", name=f"r{n}"), status=RUNNING) for n in range(2)]
    for run_id in ids:
        store.log_epoch(run_id, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.1}, 5.0)
        store.finish_run(run_id, COMPLETED)
    assert 0 == main(["tensorboard-export", "--db", str(db)])
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {store.artifacts}" in out
    assert {f"{i}/tensorboard/r{n}/{split}" for n, i in enumerate(ids) for split in ("train", "validation")} == \
        set(tensorboard_runs(store.artifacts))
