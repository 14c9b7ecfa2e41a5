"""The study suite: the right experiments with the right configs, each distinct config queued once."""
import pytest

from lsc_core import search, study
from lsc_core.config import RunConfig, preset
from lsc_core.store import COMPLETED, QUEUED
from lsc_core.train import train_run

# key: (network, labels, optimizer, learning rate, batch size, study epochs), written out from DESIGN.md.
EXPECTED = {
    "p1-adam-b32": ("seed-part1", "coarse", "adam", 1e-3, 32, 10),
    "p1-sgd-b32": ("seed-part1", "coarse", "sgd", 1e-3, 32, 10),
    "p1-adam-b16": ("seed-part1", "coarse", "adam", 1e-3, 16, 10),
    "p1-adam-b64": ("seed-part1", "coarse", "adam", 1e-3, 64, 10),
    "p1-adam-b64-lr1e-2": ("seed-part1", "coarse", "adam", 1e-2, 64, 10),
    "p1-adam-b64-lr1e-4": ("seed-part1", "coarse", "adam", 1e-4, 64, 10),
    "p2-dropout": ("seed-part2-dropout", "coarse", "adam", 1e-3, 64, 15),
    "p2-two-convs": ("seed-part2", "coarse", "adam", 1e-3, 64, 15),
    "p3-fine": ("seed-part2", "fine", "adam", 1e-3, 64, 15),
    "p3-vgg16": ("vgg16", "fine", "adam", 1e-3, 64, 5),
}


def describe(config: RunConfig) -> tuple:
    network = config.backbone.name if config.backbone else config.preset
    return network, config.label_mode, config.optimizer, config.learning_rate, config.batch_size, config.epochs


def test_the_experiments_are_the_studys():
    experiments = study.study_experiments()
    assert EXPECTED == {e.key: describe(e.config) for e in experiments if e.config is not None}
    assert [e.key for e in experiments] == [f.key for f in study.STUDY_FIGURES]
    for experiment in experiments:
        if experiment.config is not None and experiment.config.backbone is None:
            assert preset(experiment.config.preset).layers == experiment.config.layers
    vgg = next(e.config for e in experiments if e.key == "p3-vgg16").backbone
    # Done right: ImageNet weights, input upscaled beyond 32x32, a fine-tuning phase.
    assert ("imagenet", True, 3) == (vgg.weights, vgg.image_size > 32, vgg.fine_tune_epochs)


def test_the_study_search_is_ten_seeded_trials_over_the_study_space():
    spec = study.study_search_spec()
    assert (search.study_space(), "random", 10, 5, "coarse") == \
        (spec.space, spec.strategy, spec.trials, spec.epochs, spec.label_mode)


@pytest.mark.parametrize("scale, part1, part2, vgg, fine_tune", [(1.0, 10, 15, 5, 3), (0.2, 2, 3, 1, 1),
                                                                 (0.01, 1, 1, 1, 1)])
def test_epochs_scale_with_at_least_one(scale, part1, part2, vgg, fine_tune):
    configs = {e.key: e.config for e in study.study_experiments(scale, limit=500) if e.config is not None}
    assert (part1, part2, vgg, fine_tune) == (configs["p1-sgd-b32"].epochs, configs["p2-dropout"].epochs,
                                              configs["p3-vgg16"].epochs, configs["p3-vgg16"].backbone.fine_tune_epochs)
    assert {500} == {config.limit for config in configs.values()}


def test_queue_suite_queues_each_config_once_and_links_runs_to_comparisons(store):
    suite_id, new = study.queue_suite(store, epochs_scale=0.1, limit=100)
    suite = study.latest_suite(store)
    assert (suite_id, True) == (suite["id"], new)
    experiments = {e.key: e.config for e in study.study_experiments(0.1, limit=100) if e.config is not None}
    assert set(experiments) == set(suite["runs"])
    for key, run_id in suite["runs"].items():
        run = store.get_run(run_id)
        assert (QUEUED, experiments[key]) == (run.status, run.config)
    trials = store.list_runs(search_id=suite["search_id"])
    plain = [run for run in store.list_runs() if run.search_id is None]
    assert (10, 10) == (len(plain), len(trials))  # ten distinct configs, ten trials: nothing twice
    # seed-part1 with Adam, lr 1e-3, batch 64 is one run in four comparisons.
    shared = suite["runs"]["p1-adam-b64"]
    in_comparisons = [title for title, pairs in study.COMPARISONS if any(suite["runs"][k] == shared for _, k in pairs)]
    assert 4 == len(in_comparisons)
    # Asking again with the same settings reuses the suite; other settings make a new one.
    assert (suite_id, False) == study.queue_suite(store, epochs_scale=0.1, limit=100)
    assert 20 == len(store.list_runs())
    assert study.queue_suite(store, epochs_scale=0.2, limit=100)[1]


def test_the_table_fills_in_as_runs_complete(store, tiny_data):
    study.queue_suite(store, epochs_scale=0.1, limit=100)
    suite = study.latest_suite(store)
    table = study.study_table(store, suite)
    assert [f.accuracy for f in study.STUDY_FIGURES] == [row["study accuracy"] for row in table]
    assert [None] * len(table) == [row["our accuracy"] for row in table]
    run_id = suite["runs"]["p1-sgd-b32"]
    assert store.claim_run(run_id)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    row = next(r for r in study.study_table(store, suite) if r["run"] == run_id)
    assert (COMPLETED, run.best_val_accuracy, 0.469) == (row["status"], row["our accuracy"], row["study accuracy"])
    curves = study.comparison_curves(store, suite, study.COMPARISONS[0][0])
    assert {"SGD"} == set(curves["run"])
    assert {("test", "loss"), ("test", "accuracy"), ("train", "loss"), ("train", "accuracy")} == \
        set(zip(curves["split"], curves["metric"]))
    assert {"queued": 19, "completed": 1} == study.progress(store, suite)


def test_the_search_line_shows_the_best_trials_filters(store, tiny_data):
    study.queue_suite(store, epochs_scale=0.01, limit=64)
    suite = study.latest_suite(store)
    trial = store.list_runs(search_id=suite["search_id"])[-1]  # trial 1
    store.claim_run(trial.id)
    train_run(store, trial.id, load_data=lambda: tiny_data)
    row = next(r for r in study.study_table(store, suite) if r["run"] == trial.id)
    values = search.plan_values(study.study_search_spec(0.01, 64))[0]
    assert f"filters {values['conv1_filters']}/{values['conv2_filters']}/{values['conv3_filters']}/" \
           f"{values['conv4_filters']}, dense {values['dense_units']}" == row["our note"]


def test_an_experiment_whose_run_was_deleted_shows_as_not_run(store):
    study.queue_suite(store, epochs_scale=0.1, limit=100)
    suite = study.latest_suite(store)
    gone = suite["runs"]["p1-sgd-b32"]
    store.db.execute("PRAGMA foreign_keys = OFF")  # deleted by hand, the suite still naming it
    store.db.execute("DELETE FROM runs WHERE id = ?", [gone])
    store.db.execute("PRAGMA foreign_keys = ON")
    row = next(r for r in study.study_table(store, suite) if r["experiment"] == "SGD, lr 1e-3, batch 32")
    assert (None, None, "not run (its run is no longer in the store)") == (row["run"], row["our accuracy"],
                                                                           row["status"])
    assert {"queued": 19} == study.progress(store, suite)


def test_a_suite_can_be_stopped_and_removed_keeping_what_its_runs_made(store):
    older, _ = study.queue_suite(store, epochs_scale=0.1, limit=100)
    suite_id, _ = study.queue_suite(store, epochs_scale=0.2, limit=100)
    suite = study.get_suite(store, suite_id)
    running = suite["runs"]["p1-adam-b32"]
    assert store.claim_run(running)  # one run trains (here, by hand), the rest wait
    asked = []
    assert 20 == study.stop_suite(store, suite, stop_run=lambda run_id: (asked.append(run_id),
                                                                          store.request_stop(run_id)))
    assert running in asked  # the running run is asked through the given stopper (the job manager)
    assert {"stopped": 19, "running": 1} == study.progress(store, suite)  # queued ones stop at once
    assert store.stop_requested(running)  # the running one ends after its batch
    assert search.SEARCH_STOPPED == store.get_search(suite["search_id"])["status"]

    assert 1 == study.remove_suite(store, suite)  # the run still ending is asked again; the rest are done
    assert [older] == [s["id"] for s in study.suites(store)]
    assert study.get_suite(store, suite_id) is None
    assert store.get_run(running) is not None  # the runs stay, as ordinary runs
    assert {"queued": 20} == study.progress(store, study.latest_suite(store))  # the other suite untouched
