"""Resume and extend: a run continued from its checkpoint follows the path of an uninterrupted one.

Real Keras on the tiny synthetic data; the killed run is a real `python -m lsc_core train`
process ended with SIGKILL.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lsc_core.checkpoint import CheckpointError, read
from lsc_core.cli import main
from lsc_core.config import MAX_EPOCHS, LayerSpec, RunConfig
from lsc_core.model import load_run_model
from lsc_core.store import COMPLETED, QUEUED, RUNNING, STOPPED, Store, StoreError
from lsc_core.train import train_run
from stopping import StopsAfterEpoch

REPO = Path(__file__).resolve().parent.parent
LAYERS = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
          LayerSpec.make("flatten"), LayerSpec.make("dropout", rate=0.3), LayerSpec.make("dense", units=32))
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def config(**changes) -> RunConfig:
    """A tiny run whose every epoch depends on the one before: Adam's moments, a cosine schedule,
    dropout's seed state, a shuffled and augmented data stream (13 steps an epoch: not a multiple
    of the 8 steps per call a CPU run takes)."""
    return RunConfig(layers=LAYERS, epochs=4, batch_size=32, learning_rate=3e-3, schedule="cosine",
                     augment=("flip", "crop"), name="resumable").replace(**changes)


def metrics(store: Store, run_id: int) -> list[dict]:
    return [{key: row[key] for key in ("epoch", *METRICS)} for row in store.epochs(run_id)]


def close(expected: list[dict], actual: list[dict]) -> None:
    assert [row["epoch"] for row in expected] == [row["epoch"] for row in actual]
    for want, got in zip(expected, actual):
        for key in METRICS:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), (want["epoch"], key)


def model_accuracy(run, data) -> float:
    model = load_run_model(run)
    x, y = data.x_test.astype("float32"), data.labels("test", run.label_mode)
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def uninterrupted(store: Store, data, **changes) -> list[dict]:
    run_id = store.create_run(config(**changes), status=RUNNING)
    assert COMPLETED == train_run(store, run_id, load_data=lambda: data).status
    return metrics(store, run_id)


def stopped_after_two(tmp_path, data, **changes) -> tuple[Store, int]:
    stop = threading.Event()
    store = StopsAfterEpoch(tmp_path / "runs.sqlite", 2, stop)
    run_id = store.create_run(config(**changes), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: data, stop_event=stop)
    assert (STOPPED, [1, 2]) == (run.status, [row["epoch"] for row in store.epochs(run_id)])
    return Store(store.path), run_id


def test_a_stopped_run_resumed_follows_the_uninterrupted_path(tmp_path, tiny_data):
    store, run_id = stopped_after_two(tmp_path, tiny_data)
    assert read(store.checkpoint_path(run_id), run_id).epoch == 2
    store.resume(run_id, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None, 4) == (run.status, run.error, run.epochs_planned)
    close(uninterrupted(store, tiny_data), metrics(store, run_id))  # epochs 1-4, each once
    assert run.best_val_accuracy == pytest.approx(model_accuracy(run, tiny_data), abs=1e-6)


def test_a_completed_run_extended_by_two_equals_a_six_epoch_run(tmp_path, tiny_data):
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(config(schedule="constant"), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    store.extend(run_id, 2, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, 6, 6) == (run.status, run.epochs_planned, run.config.epochs)
    close(uninterrupted(store, tiny_data, schedule="constant", epochs=6), metrics(store, run_id))
    assert run.best_val_accuracy == pytest.approx(model_accuracy(run, tiny_data), abs=1e-6)


def test_an_extended_cosine_run_stretches_its_schedule_over_the_new_length(tmp_path, tiny_data):
    from lsc_core.schedules import epoch_learning_rates

    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(config(epochs=2), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    first = [row["learning_rate"] for row in store.epochs(run_id)]
    store.extend(run_id, 2, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    rates = [row["learning_rate"] for row in store.epochs(run_id)]
    assert first == rates[:2]  # the epochs already trained keep what they were trained with
    assert pytest.approx(epoch_learning_rates(run.config, 13)[2:], rel=1e-5) == rates[2:]


def test_a_process_killed_after_epoch_two_resumes_to_the_uninterrupted_result(tmp_path, tiny_npz, tiny_data):
    db = tmp_path / "runs.sqlite"
    (tmp_path / "run.json").write_text(config(batch_size=8).to_json())  # 50 steps an epoch: time to kill
    process = subprocess.Popen([sys.executable, "-m", "lsc_core", "train", "--config", str(tmp_path / "run.json"),
                                "--data", str(tiny_npz), "--db", str(db)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "LSC_ARTIFACTS": str(tmp_path / "artifacts")})
    store = Store(db)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        runs = store.list_runs()
        if runs and len(store.epochs(runs[0].id)) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (run,) = store.list_runs()
    at_kill = len(store.epochs(run.id))
    assert at_kill >= 2, "the run was killed before its second epoch"
    os.environ["LSC_ARTIFACTS"] = str(tmp_path / "artifacts")
    try:
        assert 0 == main(["train", "--resume", str(run.id), "--data", str(tiny_npz), "--db", str(db)])
    finally:
        del os.environ["LSC_ARTIFACTS"]
    run = Store(db).get_run(run.id)
    assert COMPLETED == run.status
    # Epochs 1-4 each once, epoch 3 (and 4) as an uninterrupted run has them: the optimizer's
    # state, the schedule's step and the data stream were taken up where they were.
    close(uninterrupted(Store(tmp_path / "other.sqlite"), tiny_data, batch_size=8), metrics(Store(db), run.id))
    assert run.best_val_accuracy == pytest.approx(model_accuracy(run, tiny_data), abs=1e-6)


def test_a_run_killed_between_its_checkpoint_and_the_store_is_caught_up_from_the_checkpoint(tmp_path, tiny_data):
    from lsc_core.store import INTERRUPTED

    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(config(epochs=2), status=RUNNING)
    train_run(store, run_id, load_data=lambda: tiny_data)
    stored = metrics(store, run_id)
    # As a kill after the checkpoint of epoch 2 and before the store had it would leave things.
    store.drop_epochs_after(run_id, 1)
    store.set_model_path(run_id, store.get_run(run_id).model_path, epoch=1)
    store.finish_run(run_id, INTERRUPTED, "the process training this run ended before it finished")
    store.resume(run_id, status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert (COMPLETED, None) == (run.status, run.error)
    assert stored == metrics(store, run_id)  # epoch 2 written from the checkpoint's logs
    assert run.best_epoch == run.model_epoch
    assert run.best_val_accuracy == pytest.approx(model_accuracy(run, tiny_data), abs=1e-6)


def test_refusals_are_one_line_and_change_nothing(tmp_path, tiny_data):
    store, stopped = stopped_after_two(tmp_path, tiny_data)
    completed = store.create_run(config(epochs=1), status=RUNNING)
    train_run(store, completed, load_data=lambda: tiny_data)
    queued = store.create_run(config())
    old = store.create_run(config(), status=RUNNING)
    store.log_epoch(old, 1, {"val_accuracy": 0.1}, 1.0)
    store.finish_run(old, STOPPED)  # an epoch but no checkpoint: trained before they were kept
    refusals = {
        (store.resume, completed): f"run {completed} is completed and cannot be resumed: it completed all its "
                                   "epochs: extend it by N epochs instead",
        (store.resume, queued): f"run {queued} is queued and cannot be resumed: it is queued already",
        (store.resume, old): f"run {old} has no checkpoint to continue from (it was trained before runs kept "
                             "one); clone it to train it again from scratch",
        (store.resume, 999): f"no run 999 in {store.path}",
        (lambda run_id: store.extend(run_id, 2), stopped): f"run {stopped} is stopped and cannot be extended: only "
                                                          "a completed run can be extended; resume it instead",
        (lambda run_id: store.extend(run_id, 0), completed): f"run {completed} can be extended by 1 epoch or "
                                                             "more, not 0",
    }
    before = {run.id: (run.status, run.stored_config, run.epochs_planned) for run in store.list_runs()}
    for (call, run_id), message in refusals.items():
        with pytest.raises(StoreError) as caught:
            call(run_id)
        assert message == str(caught.value)
    with pytest.raises(StoreError, match=f"run {completed} cannot be extended by {MAX_EPOCHS} epoch.s.: epochs"):
        store.extend(completed, MAX_EPOCHS)
    assert before == {run.id: (run.status, run.stored_config, run.epochs_planned) for run in store.list_runs()}


def test_the_command_line_refuses_in_one_line(tmp_path, tiny_npz, tiny_data, capsys):
    store, stopped = stopped_after_two(tmp_path, tiny_data)
    db = str(store.path)
    cases = {
        ("--resume", str(stopped), "--lr", "0.1"): f"error: run {stopped} continues with its own settings: drop --lr",
        ("--resume", str(stopped), "--epochs", "3"): "error: --resume trains the run's remaining epochs; to train "
                                                     "more, extend a completed run with --extend ID --epochs N",
        ("--extend", str(stopped)): f"error: --extend {stopped} needs --epochs N: how many more epochs to train",
        ("--extend", str(stopped), "--epochs", "2"): f"error: run {stopped} is stopped and cannot be extended: only "
                                                     "a completed run can be extended; resume it instead",
        ("--resume", "77"): f"error: no run 77 in {db}",
    }
    for flags, message in cases.items():
        assert 1 == main(["train", *flags, "--data", str(tiny_npz), "--db", db])
        assert message + "\n" == capsys.readouterr().err
    assert STOPPED == store.get_run(stopped).status


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "another run's"])
def test_a_damaged_or_foreign_checkpoint_is_one_line_and_nothing_changes(tmp_path, tiny_npz, tiny_data, capsys,
                                                                         damage):
    store, run_id = stopped_after_two(tmp_path, tiny_data)
    path = store.checkpoint_path(run_id)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
        expected = f"error: the checkpoint of run {run_id} ({path}) is damaged ("
    else:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        state = json.loads(str(arrays["state"]))
        if damage == "wrong shape":
            arrays["model_00000"] = np.zeros((3, 3, 3, 9), np.float32)
            expected = f"error: the checkpoint of run {run_id} does not fit its model: conv2d_1/kernel is (3, 3, 3, 8)"
        else:
            state["run_created_at"] = "2020-01-01T00:00:00+00:00"
            expected = f"error: the checkpoint in {path} is not run {run_id}'s: it was written by an earlier run"
        arrays["state"] = np.array(json.dumps(state))
        with open(path, "wb") as file:
            np.savez(file, **arrays)
    before = (path.read_bytes(), store.get_run(run_id), store.epochs(run_id))
    assert 1 == main(["train", "--resume", str(run_id), "--data", str(tiny_npz), "--db", str(store.path)])
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert before == (path.read_bytes(), store.get_run(run_id), store.epochs(run_id))


def test_a_checkpoint_is_read_without_unpickling(tmp_path):
    path = tmp_path / "checkpoint.npz"
    np.savez(path, state=np.array([{"format": 1}], dtype=object))  # an object array needs pickle
    with pytest.raises(CheckpointError, match="is damaged .ValueError: Object arrays cannot be loaded"):
        read(path, 5)


def test_requeue_trains_from_scratch_and_drops_the_checkpoint(tmp_path, tiny_data):
    store, run_id = stopped_after_two(tmp_path, tiny_data)
    store.requeue(run_id)
    assert not store.checkpoint_path(run_id).exists()
    assert QUEUED == store.get_run(run_id).status and [] == store.epochs(run_id)


def test_a_run_stopped_before_its_first_epoch_resumes_from_the_beginning(tmp_path, tiny_npz, tiny_data, capsys):
    """Nothing to keep and no checkpoint: `train --resume` trains it from epoch 1, as if never stopped."""
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run(config(), status=RUNNING)
    store.request_stop(run_id)  # seen before the first batch
    assert (STOPPED, []) == (train_run(store, run_id, load_data=lambda: tiny_data).status, store.epochs(run_id))
    assert "resume" == store.continue_action(store.get_run(run_id))
    assert 0 == main(["train", "--resume", str(run_id), "--data", str(tiny_npz), "--db", str(store.path)])
    assert f"run {run_id}: resumable starts again from its first epoch of 4" in capsys.readouterr().out
    assert COMPLETED == store.get_run(run_id).status
    close(uninterrupted(Store(tmp_path / "other.sqlite"), tiny_data), metrics(store, run_id))


def test_a_trainer_that_lost_its_run_does_not_put_its_checkpoint_in_place(tmp_path, tiny_data):
    from owners import hand_over, identity_of

    sleeper = subprocess.Popen(["sleep", "60"])  # the process that takes the run over
    new_owner = identity_of(sleeper.pid)

    class TakenWhileWriting(Store):
        """The run is taken by another process between the checkpoint's write and its rename."""

        def holding(self, run_id, owner):
            hand_over(self, run_id, new_owner)
            return super().holding(run_id, owner)

    try:
        store = TakenWhileWriting(tmp_path / "runs.sqlite")
        run_id = store.create_run(config(), status=RUNNING)
        train_run(store, run_id, load_data=lambda: tiny_data)
        run = store.get_run(run_id)
        assert (RUNNING, new_owner.token, []) == (run.status, store.db.execute(
            "SELECT owner FROM runs WHERE id = ?", [run_id]).fetchone()[0], store.epochs(run_id))
        assert [] == sorted(p.name for p in store.checkpoint_path(run_id).parent.glob("*checkpoint*"))
    finally:
        sleeper.kill()
        sleeper.wait()
