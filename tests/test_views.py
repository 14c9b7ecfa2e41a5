"""views: the runs table, curves, smoothing, progress and best runs, read from a real store."""
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lsc_core import views
from lsc_core.config import preset
from lsc_core.store import COMPLETED, FAILED, QUEUED, RUNNING
from lsc_core.study import STUDY_BEST

EPOCHS = [  # (loss, accuracy, val_loss, val_accuracy, seconds) per epoch
    (2.0, 0.30, 2.1, 0.28, 10.0),
    (1.5, 0.45, 1.8, 0.40, 12.0),
    (1.0, 0.60, 1.9, 0.38, 11.0),
]


def log(store, run_id, epochs=EPOCHS):
    for number, (loss, acc, val_loss, val_acc, seconds) in enumerate(epochs, start=1):
        store.log_epoch(run_id, number, {"loss": loss, "accuracy": acc, "val_loss": val_loss,
                                         "val_accuracy": val_acc}, seconds)


@pytest.fixture
def a_run(store):
    """A queued run as the store hands it out, to vary with dataclasses.replace."""
    return store.get_run(store.create_run(preset("seed-part1", epochs=2)))


@pytest.fixture
def runs(store):
    """A completed coarse run, a running fine run one epoch in, a queued run, a failed run."""
    done = store.create_run(preset("seed-part1", epochs=3), status=RUNNING)
    log(store, done)
    store.finish_run(done, COMPLETED)
    live = store.create_run(preset("seed-part2", epochs=4, label_mode="fine", name="live"), status=RUNNING)
    log(store, live, EPOCHS[:1])
    waiting = store.create_run(preset("seed-part2", epochs=2))
    broken = store.create_run(preset("seed-part1", epochs=2), status=RUNNING)
    store.finish_run(broken, FAILED, "OSError: disk on fire")
    return {"done": done, "live": live, "waiting": waiting, "broken": broken}


def test_runs_table_matches_the_store(store, runs):
    table = views.runs_table(store)
    assert views.RUN_COLUMNS == list(table.columns)
    rows = table.set_index("id")
    assert [runs["broken"], runs["waiting"], runs["live"], runs["done"]] == list(table["id"])
    assert {"id": runs["done"], "name": f"seed-part1-{runs['done']}", "status": COMPLETED, "label_mode": "coarse",
            "best_accuracy": 0.40, "best_epoch": 2, "epochs_done": 3, "epochs_planned": 3} == {
        "id": runs["done"], **{k: rows.loc[runs["done"], k] for k in ("name", "status", "label_mode",
                                                                      "best_accuracy", "best_epoch", "epochs_done",
                                                                      "epochs_planned")}}
    assert (RUNNING, "fine", 1, 4) == tuple(rows.loc[runs["live"], ["status", "label_mode", "epochs_done",
                                                                    "epochs_planned"]])
    assert (QUEUED, 0) == tuple(rows.loc[runs["waiting"], ["status", "epochs_done"]])
    assert pd.isna(rows.loc[runs["waiting"], "best_epoch"]) and pd.isna(rows.loc[runs["waiting"], "duration_s"])
    assert rows.loc[runs["done"], "duration_s"] >= 0


def test_duration_of_a_finished_and_of_a_running_run(a_run):
    finished = replace(a_run, status=COMPLETED, started_at="2025-01-01T10:00:00+00:00",
                       finished_at="2025-01-01T11:02:05+00:00")
    assert 3725.0 == views.run_duration(finished)
    running = replace(a_run, status=RUNNING, started_at="2025-01-01T10:00:00+00:00", finished_at=None)
    start = pd.Timestamp("2025-01-01T10:00:00+00:00").timestamp()
    assert 90.0 == views.run_duration(running, now=start + 90)
    assert ["1h 02m", "3m 05s", "12s", ""] == [views.format_duration(s) for s in (3725, 185, 12, None)]


def test_filter_runs_by_status_label_mode_and_name(store, runs):
    table = views.runs_table(store)
    assert [runs["live"]] == list(views.filter_runs(table, [RUNNING], [], "")["id"])
    assert [runs["live"]] == list(views.filter_runs(table, [], ["fine"], "")["id"])
    assert [runs["broken"], runs["done"]] == list(views.filter_runs(table, [], [], "PART1")["id"])
    assert [runs["done"]] == list(views.filter_runs(table, [COMPLETED], ["coarse"], "part1")["id"])
    assert 4 == len(views.filter_runs(table))


def test_source_is_search_for_search_trials_and_unknown_otherwise(a_run):
    runs = (replace(a_run, search_id=3), replace(a_run, search_id=None), replace(a_run, source="cli", search_id=2))
    assert ["search", None, "cli"] == [views.run_source(r) for r in runs]


def test_source_from_the_store_column_wins_and_an_empty_one_falls_back(a_run):
    runs = (replace(a_run, source="dashboard", search_id=None), replace(a_run, source="study", search_id=None),
            replace(a_run, source=None, search_id=4), replace(a_run, source="", search_id=None))
    assert ["dashboard", "study", "search", None] == [views.run_source(r) for r in runs]


def test_status_line_names_status_labels_params_and_best_epoch(store, runs):
    done = store.get_run(runs["done"])
    assert f"run {runs['done']} · completed · coarse labels · best test accuracy 40.00% at epoch 2" == \
        views.status_line(done)
    assert f"run {runs['waiting']} · queued · coarse labels · 1,234 parameters" == \
        views.status_line(replace(store.get_run(runs["waiting"]), params=1234))


def test_curves_are_long_form_per_run_split_and_metric(store, runs):
    frame = views.curves(store, [runs["done"]])
    assert views.CURVE_COLUMNS == list(frame.columns)
    assert 3 * 4 == len(frame)
    test_accuracy = frame[(frame["split"] == "test") & (frame["metric"] == "accuracy")]
    assert [(1, 0.28), (2, 0.40), (3, 0.38)] == list(zip(test_accuracy["epoch"], test_accuracy["value"]))
    train_loss = frame[(frame["split"] == "train") & (frame["metric"] == "loss")]
    assert [2.0, 1.5, 1.0] == list(train_loss["value"])


def test_curves_of_several_runs_keep_the_order_asked_for(store, runs):
    frame = views.curves(store, [runs["live"], runs["done"]])
    assert ["live", f"seed-part1-{runs['done']}"] == list(dict.fromkeys(frame["run"]))
    assert views.curves(store, []).empty


def test_runs_with_the_same_name_get_their_id_in_the_legend(a_run):
    labels = views.run_labels([replace(a_run, id=1, name="a"), replace(a_run, id=2, name="a"),
                               replace(a_run, id=3, name="b")])
    assert {1: "a #1", 2: "a #2", 3: "b"} == labels


def test_smoothing_is_tensorboards_debiased_ema():
    assert [1.0, 2.0, 3.0] == views.smooth([1, 2, 3], 0.0)
    # weight 0.5: ema 0.5, 1.25 -> debiased by 1-0.5, 1-0.25
    assert [pytest.approx(1.0), pytest.approx(1.25 / 0.75)] == views.smooth([1, 2], 0.5)
    assert [5.0, 5.0, 5.0] == pytest.approx(views.smooth([5, 5, 5], 0.99))  # debiased: no pull towards 0
    nan_kept = views.smooth([1.0, float("nan"), 1.0], 0.9)
    assert nan_kept[0] == 1.0 and nan_kept[2] == pytest.approx(1.0) and nan_kept[1] != nan_kept[1]
    with pytest.raises(ValueError):
        views.smooth([1.0], 1.0)


def test_smooth_curves_smooths_each_run_split_and_metric_separately(store, runs):
    frame = views.curves(store, [runs["done"], runs["live"]])
    smoothed = views.smooth_curves(frame, 0.6)
    assert list(frame["value"]) == list(smoothed["raw"])
    one = smoothed[(smoothed["run_id"] == runs["done"]) & (smoothed["split"] == "train")
                   & (smoothed["metric"] == "loss")]
    assert pytest.approx(views.smooth([2.0, 1.5, 1.0], 0.6)) == list(one["value"])
    live = smoothed[smoothed["run_id"] == runs["live"]]
    assert list(live["raw"]) == list(live["value"])  # one point: nothing to smooth with


def test_curves_csv_has_one_row_per_epoch(store, runs):
    lines = views.curves_csv(store, runs["done"]).decode().splitlines()
    assert "epoch,loss,accuracy,val_loss,val_accuracy,within_superclass,val_within_superclass,seconds," \
           "train_images_per_s,val_images_per_s,learning_rate" == lines[0]
    # A coarse run: no within-superclass shares; epochs logged without speeds or learning rates.
    assert ["1,2.0,0.3,2.1,0.28,,,10.0,,,", "2,1.5,0.45,1.8,0.4,,,12.0,,,", "3,1.0,0.6,1.9,0.38,,,11.0,,,"] == \
        lines[1:]


def test_throughput_frame_and_speed_settings_of_a_run(store):
    run_id = store.create_run(preset("seed-part1", epochs=2, batch_size=64), status=RUNNING)
    store.start_run(run_id, params=1, versions={}, device="GPU: test (x2)",
                    speed={"mixed_precision": True, "xla": True, "steps_per_execution": 16, "data_on_device": True,
                           "replicas": 2})
    store.log_epoch(run_id, 1, {}, 12.34, train_images_per_s=4321.6, val_images_per_s=20000.2)
    store.log_epoch(run_id, 2, {}, 10.0)
    frame = views.throughput_frame(store, run_id)
    assert views.THROUGHPUT_COLUMNS == list(frame.columns)
    assert [1, 4322.0, 20000.0, 12.3] == list(frame.iloc[0])
    assert frame.iloc[1].isna().tolist() == [False, True, True, False]
    provenance = views.run_config_view(store.get_run(run_id))["provenance"]
    assert "mixed precision, XLA, data on device, 16 steps per call, batch 64 (32 x 2 replicas)" == \
        provenance["speed settings"]


def test_progress_of_a_running_run_from_heartbeat_and_epochs(store, runs):
    now = time.time()
    store.heartbeat(runs["live"], {"phase": "training", "epoch": 2, "epochs": 4, "batch": 25, "batches": 100,
                                   "epoch_started": now - 3.0})
    live = views.running_now(store, now=now)
    assert [runs["live"]] == [item.run.id for item in live]
    p = live[0].progress
    assert ("training", 1, 4, 2, 25, 100) == (p.phase, p.epochs_done, p.epochs_planned, p.epoch, p.batch, p.batches)
    assert pytest.approx((1 + 0.25) / 4) == p.fraction
    assert pytest.approx(10.0 * 3 - 3.0) == p.eta_s  # mean epoch 10 s, 3 epochs to go, 3 s of this one spent
    assert "training, epoch 2/4, batch 25/100, about 27s left" == p.describe()


def test_progress_before_the_first_epoch_never_trusts_the_first_batches_alone(a_run):
    now = 1000.0
    run = replace(a_run, status=RUNNING, epochs_planned=2, progress={
        "phase": "training", "epoch": 1, "batch": 10, "batches": 40, "epoch_started": now - 5})
    early = views.progress(run, [], now=now)
    assert (0.125, None, "training, epoch 1/2, batch 10/40") == (early.fraction, early.eta_s, early.describe())
    run = replace(run, progress=run.progress | {"batch": 25, "epoch_started": now - 12.5})  # past half the first epoch
    assert pytest.approx(20.0 * 2 - 12.5) == views.progress(run, [], now=now).eta_s  # 20 s per epoch
    finished = views.progress(replace(a_run, status=COMPLETED, epochs_planned=3, progress={}),
                              [{"seconds": 1.0}] * 3, now=now)
    assert (1.0, None, COMPLETED) == (finished.fraction, finished.eta_s, finished.phase)


def test_queued_runs_in_training_order(store, runs):
    later = store.create_run(preset("seed-part1", epochs=1))
    assert [runs["waiting"], later] == list(views.queued(store)["id"])


def test_best_runs_are_completed_runs_with_the_highest_test_accuracy(store, runs):
    assert {"coarse": runs["done"], "fine": None} == {m: r and r.id for m, r in views.best_runs(store).items()}
    better = store.create_run(preset("seed-part2", epochs=1), status=RUNNING)
    log(store, better, [(1.0, 0.6, 1.2, 0.57, 5.0)])
    store.finish_run(better, COMPLETED)
    fine = store.create_run(preset("seed-part2", epochs=1, label_mode="fine"), status=RUNNING)
    log(store, fine, [(3.0, 0.2, 3.1, 0.21, 5.0)])
    store.finish_run(fine, COMPLETED)
    best = views.best_runs(store)
    assert {"coarse": (better, 0.57), "fine": (fine, 0.21)} == {
        mode: (run.id, run.best_val_accuracy) for mode, run in best.items()}
    assert {"coarse": 0.552, "fine": 0.385} == STUDY_BEST


def test_initial_run_prefers_session_then_query_then_newest(store, runs):
    assert (runs["done"], None) == views.initial_run(store, runs["done"], str(runs["live"]))
    assert (runs["live"], None) == views.initial_run(store, None, str(runs["live"]))
    assert (runs["broken"], None) == views.initial_run(store, None, None)
    run_id, message = views.initial_run(store, 999, "abc")
    assert (runs["broken"], "There is no run 'abc'; showing the newest run instead.") == (run_id, message)


def test_compare_default_is_the_newest_runs_with_epochs_running_ones_included(store, runs):
    assert [runs["live"], runs["done"]] == views.compare_default(store)
    assert [runs["live"]] == views.compare_default(store, count=1)


def test_run_options(store, runs):
    options = views.run_options(store.list_runs())
    assert [runs["broken"], runs["waiting"], runs["live"], runs["done"]] == list(options)
    assert f"#{runs['live']} live (fine, running, best 0.280)" == options[runs["live"]]
    assert f"#{runs['done']} seed-part1-{runs['done']} (coarse, best 0.400)" == options[runs["done"]]


def test_run_config_view_lists_layers_hyperparameters_and_provenance(store, runs):
    view = views.run_config_view(store.get_run(runs["done"]))
    assert ["conv2d 32 3x3 relu", "maxpool2d 2x2", "conv2d 64 3x3 relu", "flatten", "dense 128 relu",
            "dense 20 softmax (head)"] == view["layers"]
    assert {"label mode": "coarse", "optimizer": "adam", "learning rate": 0.001, "batch size": 64, "epochs": 3,
            "validation": "test set", "training images": "all", "augmentation": "none",
            "schedule": "constant"} == view["hyperparameters"]
    assert (0, None, "not recorded") == (view["provenance"]["seed"], view["problem"],
                                         view["provenance"]["speed settings"])


def test_model_file_only_when_saved(store, runs):
    run = store.get_run(runs["done"])
    assert views.model_file(run) is None
    path = store.artifacts / "best.keras"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"model bytes")
    store.set_model_path(run.id, str(path))
    assert (b"model bytes", f"seed-part1-{run.id}.keras") == views.model_file(store.get_run(run.id))
    read, name = views.model_download(store.get_run(run.id))
    path.write_bytes(b"newer bytes")  # read on click, not when the button is drawn
    assert (b"newer bytes", f"seed-part1-{run.id}.keras") == (read(), name)


def _runs_like(a_run, rows):
    return [replace(a_run, id=run_id, status=status, label_mode=mode, model_path=path and Path(path),
                    best_val_accuracy=accuracy) for run_id, status, mode, path, accuracy in rows]


def test_best_of_takes_completed_runs_and_can_ask_for_a_model(a_run):
    runs = _runs_like(a_run, [(1, "completed", "fine", "a", 0.3), (2, "completed", "fine", "b", 0.4),
                              (3, "failed", "coarse", "c", 0.9), (4, "completed", "coarse", None, 0.8),
                              (5, "completed", "coarse", "e", 0.5)])
    assert {"fine": 2, "coarse": 5} == {mode: run.id for mode, run in views.best_of(runs, need_model=True).items()}
    assert {"fine": 2, "coarse": 4} == {mode: run.id for mode, run in views.best_of(runs).items()}
    # A stopped or interrupted run keeps its best epoch's model: as good as a completed one.
    runs += _runs_like(a_run, [(6, "stopped", "fine", "f", 0.45), (7, "interrupted", "coarse", "g", 0.6)])
    assert {"fine": 6, "coarse": 7} == {mode: run.id for mode, run in views.best_of(runs, need_model=True).items()}



@pytest.fixture
def holdout(store):
    """A completed coarse run validated on a hold-out part of train, better than any test-set run."""
    run_id = store.create_run(preset("seed-part1", epochs=3, validation="holdout", name="held"), status=RUNNING)
    log(store, run_id, [(1.0, 0.7, 1.1, 0.66, 5.0)])
    store.finish_run(run_id, COMPLETED)
    return run_id


def test_a_hold_out_runs_validation_split_is_labelled_hold_out(store, runs, holdout):
    frame = views.curves(store, [holdout, runs["done"]])
    assert {("held", "hold-out"), ("held", "train"), (f"seed-part1-{runs['done']}", "test"),
            (f"seed-part1-{runs['done']}", "train")} == set(zip(frame["run"], frame["split"]))
    held = frame[(frame["run"] == "held") & (frame["split"] == "hold-out")]
    assert [("loss", 1.1), ("accuracy", 0.66)] == sorted(zip(held["metric"], held["value"]), reverse=True)
    table = views.runs_table(store).set_index("id")
    assert ("hold-out", "test") == (table.loc[holdout, "validation"], table.loc[runs["done"], "validation"])
    assert f"run {holdout} · completed · coarse labels · best hold-out accuracy 66.00% at epoch 1" == \
        views.status_line(store.get_run(holdout))


def test_hold_out_runs_are_not_held_against_the_studys_test_figures(store, runs, holdout):
    assert {"coarse": runs["done"], "fine": None} == {m: r and r.id for m, r in views.best_runs(store).items()}
    # Predict may still pick it: it only needs a good model.
    store.set_model_path(holdout, "held.keras")
    assert {"coarse": holdout} == {m: r.id for m, r in
                                   views.best_of(store.list_runs(status=COMPLETED), need_model=True).items()}


def test_run_config_view_shows_the_recipe_settings_in_use(store):
    config = preset("seed-part1", optimizer="sgd", momentum=0.9, nesterov=True, schedule="step", decay_every=2,
                    warmup_epochs=1, weight_decay=5e-4, label_smoothing=0.1, early_stopping=3,
                    augment=("flip", "crop", "cutout"), tta=True)
    hyper = views.run_config_view(store.get_run(store.create_run(config)))["hyperparameters"]
    assert {"momentum": 0.9, "Nesterov": "yes", "schedule": "step", "warm-up epochs": 1,
            "decay": "x0.1 every 2 epoch(s)", "weight decay": 5e-4, "label smoothing": 0.1,
            "early stopping patience": 3, "augmentation": "flip, crop, cutout",
            "test-time augmentation": "flip averaging"}.items() <= hyper.items()
