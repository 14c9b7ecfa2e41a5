"""Search: spaces and their JSON, grid and random plans, trials as real runs, stop and resume."""
import itertools
import json
import subprocess
import time

import pytest

from lsc_core import search
from lsc_core.config import ConfigError, LayerSpec, RunConfig, preset
from lsc_core.jobs import JobManager
from lsc_core.search import Param, SearchSpace, SearchSpec
from lsc_core.store import COMPLETED, INTERRUPTED, QUEUED, STOPPED

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
    ([{"name": "x", "layer": 1, "choice": [8]}], "unknown key(s) choice"),
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
    assert [COMPLETED, COMPLETED] == [run["status"] for run in runs]
    assert all(len(store.epochs(run["id"])) == 1 and run["model_path"] for run in runs)
    assert search.SEARCH_COMPLETED == store.get_search(search_id)["status"]
    rows = search.results_rows(store, search_id)
    assert [run["id"] for run in ranked] == [row["run"] for row in rows]
    accuracies = [row["best test accuracy"] for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    planned = search.plan_values(tiny_spec())
    assert sorted(planned, key=str) == sorted(({p: row[p] for p in planned[0]} for row in rows), key=str)
    assert ranked[0]["id"] == search.best_trial(store, search_id)["id"]
    # The best trial opens in Build & Train as its planned config, without the trial's name.
    planned_best = next(c for c in search.plan_trials(tiny_spec(), search_id) if c.name == ranked[0]["name"])
    assert planned_best.replace(name=None) == RunConfig.from_dict(search.trial_config_dict(ranked[0]))


def test_trials_run_through_the_background_queue(tmp_path, tiny_data):
    manager = JobManager(tmp_path / "runs.sqlite", load_data=lambda: tiny_data)
    try:
        search_id = search.launch_search(manager.store, tiny_spec(trials=3), manager.submit)
        deadline = time.time() + 120
        while search.refresh_status(manager.store, search_id) == search.SEARCH_RUNNING and time.time() < deadline:
            time.sleep(0.5)
    finally:
        manager.shutdown(timeout=60)
    runs = manager.store.list_runs(search_id=search_id)
    assert [COMPLETED] * 3 == [run["status"] for run in runs]
    assert search.SEARCH_COMPLETED == manager.store.get_search(search_id)["status"]


def test_stop_drops_queued_trials_and_resume_leaves_a_stopped_search_alone(store):
    search_id = search.launch_search(store, tiny_spec(trials=3))
    assert [QUEUED] * 3 == [run["status"] for run in store.list_runs(search_id=search_id)]
    search.stop_search(store, search_id)
    assert [STOPPED] * 3 == [run["status"] for run in store.list_runs(search_id=search_id)]
    assert [] == search.resume_searches(store)
    assert search.SEARCH_STOPPED == search.refresh_status(store, search_id)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_resume_after_a_crash_reruns_only_the_interrupted_trial(store, tiny_data):
    from lsc_core.train import train_run

    search_id = search.launch_search(store, tiny_spec(trials=3))
    first, second, third = sorted(run["id"] for run in store.list_runs(search_id=search_id))
    assert store.claim_run(first)
    train_run(store, first, load_data=lambda: tiny_data)
    finished = store.get_run(first)
    # The second trial was mid-training when its process died: running, one epoch logged, owner gone.
    assert store.claim_run(second)
    store.log_epoch(second, 1, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.0, "val_accuracy": 0.1}, 1.0)
    store.db.execute("UPDATE runs SET pid = ? WHERE id = ?", [_dead_pid(), second])
    store.db.execute("DELETE FROM runs WHERE id = ?", [third])  # never queued before the crash

    requeued = search.resume_searches(store)
    assert second == requeued[0] and len(requeued) == 2  # the interrupted trial, then the missing one
    assert [] == store.epochs(second)
    runs = {run["name"]: run for run in store.list_runs(search_id=search_id)}
    assert [COMPLETED, QUEUED, QUEUED] == [runs[f"search{search_id}-trial{n}"]["status"] for n in (1, 2, 3)]
    assert finished == store.get_run(first)  # kept as it was

    search.run_search(store, search_id, load_data=lambda: tiny_data)
    runs = {run["name"]: run for run in store.list_runs(search_id=search_id)}
    assert [COMPLETED] * 3 == [runs[f"search{search_id}-trial{n}"]["status"] for n in (1, 2, 3)]
    assert finished == store.get_run(first)
    assert search.SEARCH_COMPLETED == store.get_search(search_id)["status"]


def test_an_interrupted_trial_keeps_the_search_running(store):
    search_id = search.launch_search(store, tiny_spec(trials=1))
    (run,) = store.list_runs(search_id=search_id)
    store.claim_run(run["id"])
    store.finish_run(run["id"], INTERRUPTED)
    assert search.SEARCH_RUNNING == search.refresh_status(store, search_id)
    assert [run["id"]] == search.resume_searches(store)


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
