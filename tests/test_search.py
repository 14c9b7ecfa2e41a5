"""Search: spaces and their JSON, grid and random plans, trials as real runs, stop and resume."""
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from owners import dead_identity, hand_over, identity_of
from lsc_core import search
from lsc_core.config import ConfigError, LayerSpec, RunConfig, preset, validate
from lsc_core.jobs import JobManager
from lsc_core.search import Param, SearchSpace, SearchSpec
from lsc_core.store import COMPLETED, INTERRUPTED, QUEUED, RUNNING, STOPPED, Store

REPO = Path(__file__).resolve().parent.parent

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


def tiny_space(**changes):
    base = RunConfig(layers=SMALL, batch_size=64, learning_rate=3e-3, seed=1)
    params = (Param("conv1_filters", layer=1, choices=(4, 8)), Param("dense_units", layer=4, choices=(16, 32)),
              Param("optimizer", field="optimizer", choices=("adam", "sgd")))
    return SearchSpace(**{"base": base, "params": params, **changes})


def tiny_spec(**changes):
    return SearchSpec(tiny_space(), **{"strategy": "random", "trials": 2, "epochs": 1, "limit": 64, **changes})


def test_study_space_is_the_studys_over_seed_part2():
    space = search.study_space()
    assert preset("seed-part2") == space.base
    expected = [("conv1_filters", 1, (16, 32, 64)), ("conv2_filters", 2, (16, 32, 64)),
                ("conv3_filters", 5, (32, 64, 128)), ("conv4_filters", 6, (32, 64, 128)),
                ("dense_units", 9, (64, 128, 256))]
    assert expected == [(p.name, p.layer, p.choices) for p in space.params]
    assert ["conv2d"] * 4 + ["dense"] == [space.base.layers[p.layer - 1].kind for p in space.params]


def test_a_search_is_named_after_its_strategy_network_labels_and_settings(store):
    assert "random, custom coarse: conv1_filters, dense_units, optimizer" == search.default_search_name(tiny_spec())
    study = SearchSpec(search.study_space(), strategy="grid", label_mode="fine")
    assert "grid, seed-part2 fine: conv1_filters, conv2_filters, conv3_filters +2 more" == \
        search.default_search_name(study)
    assert ["random, custom coarse: conv1_filters, dense_units, optimizer", "mine"] == \
        [store.get_search(search.create_search(store, tiny_spec(), name))["name"] for name in (None, "mine")]


def test_space_json_round_trip_and_preset_base():
    space = tiny_space(params=tiny_space().params + (Param("learning_rate", field="learning_rate",
                                                           log_range=(1e-4, 1e-2)),))
    assert space == SearchSpace.from_json(space.to_json())
    written = {"base": "seed-part1", "params": [{"name": "dense_units", "layer": 5, "choices": [64, 128]}]}
    parsed = SearchSpace.from_json(json.dumps(written))
    assert (preset("seed-part1"), (Param("dense_units", layer=5, choices=(64, 128)),)) == (parsed.base, parsed.params)
    spec = tiny_spec(strategy="grid", trials=None)
    assert spec == SearchSpec.from_json(spec.to_json())


@pytest.mark.parametrize("params, message", [
    ([{"name": "x", "layer": 9, "choices": [1]}], "the base network has no layer 9"),
    ([{"name": "x", "layer": 2, "choices": [1]}], "layer 2 is maxpool2d, which has nothing to search"),
    ([{"name": "x", "field": "epochs", "choices": [1]}], "give a layer position or a field from"),
    ([{"name": "x", "layer": 1, "choices": [0, 8]}], "'x' = 0: layer 1 (conv2d): filters must be"),
    ([{"name": "x", "field": "learning_rate", "log_range": [1e-2, 1e-4]}], "0 < low < high"),
    ([{"name": "x", "layer": 1, "choices": [8], "log_range": [1, 2]}], "either choices or a log_range"),
    ([{"name": "x", "layer": 1, "choice": [8]}], "search parameter 1: unknown setting(s): choice"),
    ([], "no parameters"),
])
def test_bad_spaces_are_refused_with_the_reason(params, message):
    text = json.dumps({"base": RunConfig(layers=SMALL).to_dict(), "params": params})
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_json(text)
    assert message in str(caught.value)


def test_grid_enumerates_exactly_the_product():
    spec = tiny_spec(strategy="grid", trials=None)
    expected = [{"conv1_filters": c, "dense_units": d, "optimizer": o}
                for c, d, o in itertools.product((4, 8), (16, 32), ("adam", "sgd"))]
    assert expected == search.plan_values(spec)
    assert expected[:3] == search.plan_values(tiny_spec(strategy="grid", trials=3))
    configs = search.plan_trials(spec, search_id=7)
    assert [f"search7-trial{n}" for n in range(1, 9)] == [c.name for c in configs]
    assert [(v["conv1_filters"], v["dense_units"], v["optimizer"]) for v in expected] == \
        [(c.layers[0].params["filters"], c.layers[3].params["units"], c.optimizer) for c in configs]
    assert {(1, 64, 1, "coarse")} == {(c.epochs, c.limit, c.seed, c.label_mode) for c in configs}


def test_grid_of_a_log_range_uses_log_spaced_points():
    space = SearchSpace(RunConfig(layers=SMALL), (Param("learning_rate", field="learning_rate",
                                                        log_range=(1e-4, 1e-2)),))
    assert [{"learning_rate": v} for v in (1e-4, 1e-3, 1e-2)] == \
        search.plan_values(SearchSpec(space, strategy="grid", trials=None))


def test_random_is_seeded_deterministic_and_draws_distinct_combinations():
    spec = SearchSpec(search.study_space(), trials=10, seed=3)
    first = search.plan_values(spec)
    assert first == search.plan_values(spec)
    assert first != search.plan_values(SearchSpec(search.study_space(), trials=10, seed=4))
    assert 10 == len({tuple(v.values()) for v in first})
    for values in first:
        assert all(values[p.name] in p.choices for p in spec.space.params)
    # All 8 combinations of a small space, each once, before any repeat.
    assert 8 == len({tuple(v.values()) for v in search.plan_values(tiny_spec(trials=8))})


def test_random_learning_rate_is_log_uniform_within_the_range():
    space = SearchSpace(RunConfig(layers=SMALL), (Param("learning_rate", field="learning_rate",
                                                        log_range=(1e-4, 1e-1)),))
    values = [v["learning_rate"] for v in search.plan_values(SearchSpec(space, trials=200, seed=0))]
    assert all(1e-4 <= v <= 1e-1 for v in values)
    # Log-uniform: about a third of the draws in each decade.
    per_decade = [sum(low <= v < low * 10 for v in values) for low in (1e-4, 1e-3, 1e-2)]
    assert all(40 < n < 95 for n in per_decade), per_decade


def test_a_search_runs_in_the_foreground_and_stores_linked_runs(store, tiny_data):
    search_id = search.create_search(store, tiny_spec())
    seen = []
    ranked = search.run_search(store, search_id, load_data=lambda: tiny_data,
                               on_trial=lambda number, total, config: seen.append((number, total, config.name)))
    assert [(1, 2, f"search{search_id}-trial1"), (2, 2, f"search{search_id}-trial2")] == seen
    runs = store.list_runs(search_id=search_id)
    assert [COMPLETED, COMPLETED] == [run.status for run in runs]
    assert all(len(store.epochs(run.id)) == 1 and run.model_path for run in runs)
    assert search.SEARCH_COMPLETED == store.get_search(search_id)["status"]
    rows = search.results_rows(store, search_id)
    assert [run.id for run in ranked] == [row["run"] for row in rows]
    accuracies = [row["best test accuracy"] for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    planned = search.plan_values(tiny_spec())
    assert sorted(planned, key=str) == sorted(({p: row[p] for p in planned[0]} for row in rows), key=str)
    assert ranked[0].id == search.best_trial(store, search_id).id
    # The best trial opens in Build & Train as its planned config, without the trial's name.
    planned_best = next(c for c in search.plan_trials(tiny_spec(), search_id) if c.name == ranked[0].name)
    assert planned_best.replace(name=None) == RunConfig.from_dict(search.trial_config_dict(ranked[0]))


def test_trials_run_through_the_background_queue(tmp_path, tiny_data):
    manager = JobManager(tmp_path / "runs.sqlite", load_data=lambda: tiny_data)
    try:
        search_id = search.launch_search(manager.store, tiny_spec(trials=3))
        deadline = time.time() + 120
        # The worker marks the search completed where its last trial ends; reading never does.
        while manager.store.get_search(search_id)["status"] == search.SEARCH_RUNNING and time.time() < deadline:
            time.sleep(0.5)
    finally:
        manager.shutdown(timeout=60)
    runs = manager.store.list_runs(search_id=search_id)
    assert [COMPLETED] * 3 == [run.status for run in runs]
    assert search.SEARCH_COMPLETED == manager.store.get_search(search_id)["status"]


def test_stop_drops_queued_trials_and_resume_leaves_a_stopped_search_alone(store):
    search_id = search.launch_search(store, tiny_spec(trials=3))
    assert [QUEUED] * 3 == [run.status for run in store.list_runs(search_id=search_id)]
    search.stop_search(store, search_id)
    assert [STOPPED] * 3 == [run.status for run in store.list_runs(search_id=search_id)]
    assert [] == search.resume_searches(store)
    assert search.SEARCH_STOPPED == search.trial_finished(store, search_id)


def test_resume_after_a_crash_reruns_only_the_interrupted_trial(store, tiny_data):
    from lsc_core.train import train_run

    search_id = search.launch_search(store, tiny_spec(trials=3))
    first, second, third = sorted(run.id for run in store.list_runs(search_id=search_id))
    assert store.claim_run(first)
    train_run(store, first, load_data=lambda: tiny_data)
    finished = store.get_run(first)
    # The second trial was mid-training when its process died: running, one epoch logged, owner gone.
    assert store.claim_run(second)
    store.log_epoch(second, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.0, "val_accuracy": 0.1}, 1.0)
    hand_over(store, second, dead_identity(), heartbeat_age_s=60)
    store.db.execute("DELETE FROM runs WHERE id = ?", [third])  # never queued before the crash

    requeued = search.resume_searches(store)
    assert second == requeued[0] and len(requeued) == 2  # the interrupted trial, then the missing one
    assert [] == store.epochs(second)
    runs = {run.name: run for run in store.list_runs(search_id=search_id)}
    assert [COMPLETED, QUEUED, QUEUED] == [runs[f"search{search_id}-trial{n}"].status for n in (1, 2, 3)]
    assert finished == store.get_run(first)  # kept as it was

    search.run_search(store, search_id, load_data=lambda: tiny_data)
    runs = {run.name: run for run in store.list_runs(search_id=search_id)}
    assert [COMPLETED] * 3 == [runs[f"search{search_id}-trial{n}"].status for n in (1, 2, 3)]
    assert finished == store.get_run(first)
    assert search.SEARCH_COMPLETED == store.get_search(search_id)["status"]


def test_an_interrupted_trial_keeps_the_search_running(store):
    search_id = search.launch_search(store, tiny_spec(trials=1))
    (run,) = store.list_runs(search_id=search_id)
    store.claim_run(run.id)
    store.finish_run(run.id, INTERRUPTED)
    assert search.SEARCH_RUNNING == search.trial_finished(store, search_id)
    assert [run.id] == search.resume_searches(store)


def test_space_from_the_form_defaults_is_the_study_space():
    base = preset("seed-part2")
    layers = {choice.position: list(choice.default) for choice in search.searchable_layers(base)}
    assert search.study_space() == search.space_from_form(base, layers, [64], ["adam"], None)
    space = search.space_from_form(base, {**layers, 4: [0.1, 0.25]}, [32, 64], ["adam"], (1e-4, 1e-2))
    assert ["conv1_filters", "conv2_filters", "dropout1_rate", "conv3_filters", "conv4_filters", "dense_units",
            "batch_size", "learning_rate"] == [p.name for p in space.params]
    with pytest.raises(ConfigError, match="layer 1: conv2d 32 3x3 relu: choose at least one value"):
        search.space_from_form(base, {**layers, 1: []}, [64], ["adam"], None)
    with pytest.raises(ConfigError, match="nothing to search"):
        search.space_from_form(base, {p: v[:1] for p, v in layers.items()}, [64], ["adam"], None)


def test_random_search_varies_the_new_layer_kinds_and_every_trial_is_valid():
    base = RunConfig(layers=(LayerSpec.make("conv_bn", filters=32), LayerSpec.make("residual", filters=64, strides=2),
                             LayerSpec.make("separable_conv2d", filters=128), LayerSpec.make("global_avg_pool")))
    choices = search.searchable_layers(base)
    assert [(1, "conv_bn", (16, 32, 64)), (2, "residual", (32, 64, 128)), (3, "separable_conv2d", (64, 128, 256))] \
        == [(c.position, c.kind, c.default) for c in choices]
    space = search.space_from_form(base, {c.position: list(c.default) for c in choices}, [128], ["sgd"], None)
    assert ["convbn1_filters", "residual1_filters", "sepconv1_filters"] == [p.name for p in space.params]
    configs = search.plan_trials(SearchSpec(space, trials=5, seed=3), search_id=1)
    assert 5 == len({tuple(layer.params["filters"] for layer in c.layers[:3]) for c in configs})
    for config in configs:
        validate(config)
        assert all(search.param_value(p, config) == config.layers[p.layer - 1].params["filters"]
                   for p in space.params)


# -- no endless draws, no duplicate trials, no surprise resumes ---------------------------------
def test_a_repeated_choice_is_refused_where_it_is_written():
    text = json.dumps({"base": RunConfig(layers=SMALL).to_dict(),
                       "params": [{"name": "dense_units", "layer": 4, "choices": [64, 64]}]})
    with pytest.raises(ConfigError, match="'dense_units': choice 64 is listed more than once; give each value once"):
        SearchSpace.from_json(text)
    with pytest.raises(ConfigError, match="each choice must be a single number or word"):
        SearchSpace.from_dict({"base": RunConfig(layers=SMALL).to_dict(),
                               "params": [{"name": "dense_units", "layer": 4, "choices": [[64], [32]]}]})


def test_random_plans_end_even_when_the_space_has_fewer_combinations_than_it_claims():
    """Spaces that never pass check_space (as stored before it refused repeats) or whose log
    range rounds to a few values: the plan still ends. In a subprocess: a hang is a failure."""
    script = """
from lsc_core import search
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.search import Param, SearchSpace, SearchSpec
base = RunConfig(layers=(LayerSpec.make("flatten"), LayerSpec.make("dense", units=32)))
repeated = SearchSpace(base, (Param("dense_units", layer=2, choices=(64, 64)),))
narrow = SearchSpace(base, (Param("learning_rate", field="learning_rate", log_range=(1e-4, 1.001e-4)),))
print(search.plan_values(SearchSpec(repeated, trials=3)))
print(sorted({v["learning_rate"] for v in search.plan_values(SearchSpec(narrow, trials=5))}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ["[{'dense_units': 64}, {'dense_units': 64}, {'dense_units': 64}]", "[0.0001]"] == \
        result.stdout.splitlines(), result.stderr[-2000:]


def test_budgets_that_would_take_forever_to_plan_are_refused():
    ten = tuple(range(1, 11))
    huge = tiny_space(params=(Param("conv1_filters", layer=1, choices=ten), Param("dense_units", layer=4, choices=ten),
                              Param("batch_size", field="batch_size", choices=ten),
                              Param("momentum", field="momentum", choices=tuple(v / 10 for v in range(10))),
                              Param("learning_rate", field="learning_rate", choices=tuple(v / 1000 for v in ten))))
    assert 100_000 == huge.grid_size
    with pytest.raises(ConfigError, match="the grid has 100,000 points, more than 10,000: give fewer values or a "
                                          "number of trials"):
        search.check_spec(SearchSpec(huge, strategy="grid", trials=None))
    first = search.plan_values(search.check_spec(SearchSpec(huge, strategy="grid", trials=3)))
    assert [1, 1, 1] == [v["conv1_filters"] for v in first] and [0.001, 0.002, 0.003] == [
        v["learning_rate"] for v in first]
    with pytest.raises(ConfigError, match="trials must be a whole number from 1 to 10,000, got 10001"):
        search.check_spec(tiny_spec(trials=10_001))


def test_a_stored_spec_is_read_without_checking_it_again(store):
    """Stored specs were checked when created: pages read them every refresh, and a rule added
    later (here, a value the checks now refuse) must not make an old search unreadable."""
    spec = tiny_spec(strategy="grid", trials=None)
    data = json.loads(spec.to_json())
    data["space"]["params"][0]["choices"] = [0, 8]  # filters 0: refused by check_space today
    search_id = store.create_search("old search", json.dumps(data, sort_keys=True))
    with pytest.raises(ConfigError):
        SearchSpec.from_json(json.dumps(data))
    assert (0, 8) == search.get_spec(store, search_id).space.params[0].choices
    assert (search_id, 8, 0) == tuple(search.summary(store, search_id)[k] for k in ("id", "planned", "completed"))


def test_resume_leaves_alone_a_search_a_live_process_is_training(store):
    search_id = search.launch_search(store, tiny_spec(trials=2))
    first, second = sorted(run.id for run in store.list_runs(search_id=search_id))
    store.db.execute("DELETE FROM runs WHERE id = ?", [second])  # not created yet by that process
    other = subprocess.Popen(["sleep", "60"])  # the live process training trial 1
    try:
        assert store.claim_run(first)
        hand_over(store, first, identity_of(other.pid), heartbeat_age_s=60)  # silent a minute, but alive
        assert [] == search.resume_searches(store)
        assert [first] == [run.id for run in store.list_runs(search_id=search_id)]
    finally:
        other.kill()
        other.wait()
    # Once that process is gone, the search is resumed: trial 1 again, trial 2 created.
    requeued = search.resume_searches(store)
    assert first == requeued[0] and 2 == len(requeued)


def test_two_processes_queuing_the_same_search_create_each_trial_once(tmp_path):
    db = tmp_path / "runs.sqlite"
    search_id = search.create_search(Store(db), tiny_spec(trials=6))
    barrier = threading.Barrier(4)

    def queue():  # each thread has its own connection, as separate processes would
        barrier.wait()
        search.queue_missing_trials(Store(db), search_id)

    threads = [threading.Thread(target=queue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [run.name for run in Store(db).list_runs(search_id=search_id)]
    assert sorted(f"search{search_id}-trial{n}" for n in range(1, 7)) == sorted(names)
    assert [None] == [Store(db).create_trial_once(search.plan_trials(tiny_spec(trials=6), search_id)[0], search_id)]


def test_ctrl_c_on_a_command_line_search_stops_it_and_resume_continues_it(tmp_path, tiny_npz, tiny_data):
    db = tmp_path / "runs.sqlite"
    space = tmp_path / "space.json"
    space.write_text(tiny_space().to_json())
    command = [sys.executable, "-m", "lsc_core", "search", "--space", str(space), "--trials", "2", "--epochs", "20",
               "--limit", "64", "--data", str(tiny_npz), "--db", str(db)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        store = None
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:  # until trial 1 has trained an epoch
            store = store or (Store(db) if db.exists() else None)
            running = store.list_runs(status=RUNNING) if store else []
            if running and store.epochs(running[0].id):
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert 130 == process.returncode, err[-2000:]
    (found,) = store.list_searches()
    search_id = found["id"]
    assert f"search {search_id} stopped. Continue it (the interrupted trial runs again) with: " \
           f"python -m lsc_core search --resume {search_id}" == err.strip().splitlines()[-1]
    assert search.SEARCH_STOPPED == found["status"]
    (trial,) = store.list_runs(search_id=search_id)
    assert (f"search{search_id}-trial1", INTERRUPTED) == (trial.name, trial.status)
    # A dashboard starting now takes nothing over.
    assert [] == JobManager(db, load_data=lambda: tiny_data, start=False).store.list_runs(status=QUEUED)
    assert [] == search.resume_searches(store)

    from lsc_core.cli import main

    assert 0 == main(["search", "--resume", str(search_id), "--data", str(tiny_npz), "--db", str(db)])
    runs = {run.name: run for run in store.list_runs(search_id=search_id)}
    assert [COMPLETED, COMPLETED] == [runs[f"search{search_id}-trial{n}"].status for n in (1, 2)]
    assert trial.id == runs[f"search{search_id}-trial1"].id  # the same run, trained again
    assert search.SEARCH_COMPLETED == store.get_search(search_id)["status"]


def test_reading_a_search_never_writes(store):
    search_id = search.launch_search(store, tiny_spec(trials=1))
    (run,) = store.list_runs(search_id=search_id)
    store.claim_run(run.id)
    store.finish_run(run.id, COMPLETED)  # finished behind the runner's back
    before = store.db.execute("SELECT total_changes()").fetchone()[0]
    assert search.SEARCH_RUNNING == search.summary(store, search_id)["status"]
    search.summaries(store), search.results_frame(store, search_id), search.best_trial(store, search_id)
    assert before == store.db.execute("SELECT total_changes()").fetchone()[0]
    assert search.SEARCH_COMPLETED == search.trial_finished(store, search_id)  # where a trial ends
