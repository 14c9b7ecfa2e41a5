"""The study this dashboard grows from, replayed as one suite of runs.

`study_experiments()` lists the study's experiments as RunConfigs; `COMPARISONS` says
which experiments the study compared with which (an experiment can serve several:
seed-part1 with Adam, lr 1e-3, batch 64 is the batch-size winner, the middle learning
rate and the network the dropout and architecture changes are measured against). A
suite queues each distinct config once and records which run plays each experiment.

Epochs per experiment (STUDY_EPOCHS) are chosen to show what the study reported:
Part 1 peaked at epoch 4 and then overfit, so 10 epochs show both; dropout and the
deeper network learn more slowly, so Part 2 and 3 get 15; search trials get 5 (ten of
them); VGG16 gets 5 frozen epochs and 3 fine-tuning ones. `epochs_scale` shrinks all
of them for a quick pass (at least 1 epoch each).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

from .backbones import BACKBONES
from .config import BackboneSpec, ConfigError, RunConfig, preset, validate
from .search import SearchSpec, launch_search, param_value, plan_trials, run_search, stop_search, study_space
from .store import ACTIVE_STATES, QUEUED, Store

STUDY_EPOCHS = {"part1": 10, "part2": 15, "search": 5, "part3": 15, "transfer": 5, "fine_tune": 3}
SEARCH_KEY = "p2-search"  # the random search: a search of trials, not one run
SEARCH_TRIALS = 10


@dataclass(frozen=True)
class Experiment:
    key: str  # stable id within the study, e.g. "p1-adam-b64"
    part: str  # "Part 1" ...
    setting: str  # what the study called it
    config: RunConfig | None  # None for the search (see study_search_spec)


@dataclass(frozen=True)
class Figure:
    """One line of the study's results table (DESIGN.md, "The study")."""

    key: str
    accuracy: float | None  # best test accuracy the study reported, if it gave one
    note: str


# The study's published figures, in its order. Validation was on the test set.
STUDY_FIGURES = (
    Figure("p1-adam-b32", 0.480, "best at epoch 4, then overfits"),
    Figure("p1-sgd-b32", 0.469, "same lr as Adam"),
    Figure("p1-adam-b16", None, "worse than batch 64"),
    Figure("p1-adam-b64", 0.496, "batch 64 better than 16"),
    Figure("p1-adam-b64-lr1e-2", 0.05, "stuck at chance (1 in 20)"),
    Figure("p1-adam-b64-lr1e-4", 0.502, "slower"),
    Figure("p2-dropout", 0.513, ""),
    Figure("p2-two-convs", 0.552, "the study's best network"),
    Figure(SEARCH_KEY, None, "10 trials; best filters 32/32/64/64, dense 128"),
    Figure("p3-fine", 0.385, "100 classes"),
    Figure("p3-vgg16", 0.155, "blamed on poor preprocessing"),
)
# The study's best test accuracy per label mode: the bar Home holds the dashboard's runs to.
_BEST_KEYS = {"coarse": "p2-two-convs", "fine": "p3-fine"}
STUDY_BEST = {mode: next(f.accuracy for f in STUDY_FIGURES if f.key == key) for mode, key in _BEST_KEYS.items()}

# Each comparison the study drew: a title and (legend label, experiment key) pairs.
COMPARISONS = (
    ("Optimizers (Part 1, lr 1e-3, batch 32)", (("Adam", "p1-adam-b32"), ("SGD", "p1-sgd-b32"))),
    ("Batch sizes (Part 1, Adam, lr 1e-3)",
     (("batch 16", "p1-adam-b16"), ("batch 32", "p1-adam-b32"), ("batch 64", "p1-adam-b64"))),
    ("Learning rates (Part 1, Adam, batch 64)",
     (("lr 1e-2", "p1-adam-b64-lr1e-2"), ("lr 1e-3", "p1-adam-b64"), ("lr 1e-4", "p1-adam-b64-lr1e-4"))),
    ("Dropout (Part 2)", (("no dropout", "p1-adam-b64"), ("dropout .25/.25/.5", "p2-dropout"))),
    ("Architectures (Part 2)",
     (("seed-part1", "p1-adam-b64"), ("with dropout", "p2-dropout"), ("two extra convs", "p2-two-convs"))),
    ("Fine labels (Part 3)", (("seed-part2", "p3-fine"), ("VGG16 transfer", "p3-vgg16"))),
)


def description() -> str:
    """What the study did and how many epochs each part gets here, for the Study page."""
    e = STUDY_EPOCHS
    return ("Part 1: seed-part1 on coarse labels (optimizers, batch sizes, learning rates). Part 2: dropout, two "
            f"extra convolutions, a {SEARCH_TRIALS}-trial random search. Part 3: the best network on fine labels "
            "and VGG16 transfer done right (ImageNet weights, upscaled input, its own preprocessing). A run shared "
            f"by several comparisons is trained once. Study epochs: Part 1 {e['part1']}, Part 2 {e['part2']}, "
            f"Part 3 {e['part3']}, search trials {e['search']}, VGG16 {e['transfer']} + {e['fine_tune']} "
            "fine-tuning.")


def scaled(epochs: int, scale: float) -> int:
    """A study epoch count scaled for a quick pass, never below 1."""
    return max(1, round(epochs * scale))


def study_experiments(epochs_scale: float = 1.0, limit: int | None = None) -> list[Experiment]:
    """The study's experiments in its order, each a named RunConfig (the search: config None)."""
    e = {part: scaled(n, epochs_scale) for part, n in STUDY_EPOCHS.items()}

    def part1(key, setting, **changes):
        config = preset("seed-part1", label_mode="coarse", epochs=e["part1"], limit=limit, name=f"study-{key}",
                        **{"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, **changes})
        return Experiment(key, "Part 1", setting, config)

    def later(key, part, setting, name, mode, epochs):
        return Experiment(key, part, setting, preset(name, label_mode=mode, epochs=epochs, limit=limit,
                                                     name=f"study-{key}"))

    vgg = BackboneSpec(name="vgg16", weights="imagenet", image_size=BACKBONES["vgg16"].default_size,
                       fine_tune_epochs=scaled(STUDY_EPOCHS["fine_tune"], epochs_scale))
    return [
        part1("p1-adam-b32", "Adam, lr 1e-3, batch 32", batch_size=32),
        part1("p1-sgd-b32", "SGD, lr 1e-3, batch 32", optimizer="sgd", batch_size=32),
        part1("p1-adam-b16", "Adam, lr 1e-3, batch 16", batch_size=16),
        part1("p1-adam-b64", "Adam, lr 1e-3, batch 64"),
        part1("p1-adam-b64-lr1e-2", "Adam, lr 1e-2, batch 64", learning_rate=1e-2),
        part1("p1-adam-b64-lr1e-4", "Adam, lr 1e-4, batch 64", learning_rate=1e-4),
        later("p2-dropout", "Part 2", "seed-part1 + dropout (seed-part2-dropout)", "seed-part2-dropout", "coarse",
              e["part2"]),
        later("p2-two-convs", "Part 2", "two extra convs (seed-part2)", "seed-part2", "coarse", e["part2"]),
        Experiment(SEARCH_KEY, "Part 2", f"random search, {SEARCH_TRIALS} trials", None),
        later("p3-fine", "Part 3", "seed-part2 on fine labels", "seed-part2", "fine", e["part3"]),
        Experiment("p3-vgg16", "Part 3", "VGG16 transfer (ImageNet, upscaled, own preprocessing)",
                   RunConfig(label_mode="fine", backbone=vgg, epochs=e["transfer"], limit=limit,
                             name="study-p3-vgg16")),
    ]


def study_search_spec(epochs_scale: float = 1.0, limit: int | None = None) -> SearchSpec:
    """The study's random search: 10 seeded trials over its space, coarse labels."""
    return SearchSpec(study_space(), strategy="random", trials=SEARCH_TRIALS,
                      epochs=scaled(STUDY_EPOCHS["search"], epochs_scale), label_mode="coarse", limit=limit, seed=0)


def _identity(config: RunConfig) -> str:
    """A config's identity for de-duplication: everything but its name."""
    return config.replace(name=None).to_json()


# -- suites in the store ------------------------------------------------------------------------
def planned_configs(epochs_scale: float = 1.0, limit: int | None = None) -> list[RunConfig]:
    """Every run queuing the study would train: each distinct experiment once, then the search's trials."""
    distinct = {_identity(e.config): e.config for e in study_experiments(epochs_scale, limit) if e.config is not None}
    return [*distinct.values(), *plan_trials(study_search_spec(epochs_scale, limit), 0)]


def queue_suite(store: Store, submit: Callable[..., int] | None = None, epochs_scale: float = 1.0,
                limit: int | None = None) -> tuple[int, bool]:
    """Queue the study (each distinct config once, plus its search); (suite id, newly queued).

    Asking again with the same scale and limit returns the existing suite instead of
    queuing the whole study a second time.
    """
    if not (isinstance(epochs_scale, (int, float)) and math.isfinite(epochs_scale) and epochs_scale > 0):
        raise ConfigError(f"epochs scale must be a finite number above 0, got {epochs_scale!r}")
    existing = existing_suite(store, epochs_scale, limit)
    if existing is not None:
        return existing, False
    submit = submit or (lambda config, search_id=None, source=None:
                        store.create_run(validate(config), search_id=search_id, source=source))
    experiments = study_experiments(epochs_scale, limit)
    for experiment in experiments:  # all valid before anything is queued
        if experiment.config is not None:
            validate(experiment.config)
    runs: dict[str, int] = {}
    seen: dict[str, int] = {}
    for experiment in experiments:
        if experiment.config is None:
            continue
        identity = _identity(experiment.config)
        if identity not in seen:
            seen[identity] = submit(experiment.config, source="study")
        runs[experiment.key] = seen[identity]
    search_id = launch_search(store, study_search_spec(epochs_scale, limit), name="study search")
    full_spec = json.dumps({"epochs_scale": epochs_scale, "limit": limit, "search_id": search_id}, sort_keys=True)
    return store.create_suite("study", full_spec, runs), True


def existing_suite(store: Store, epochs_scale: float, limit: int | None) -> int | None:
    """The id of the suite already queued at this scale and limit, if any."""
    spec = json.dumps({"epochs_scale": epochs_scale, "limit": limit}, sort_keys=True)
    return next((suite["id"] for suite in suites(store) if suite["spec_key"] == spec), None)


def suites(store: Store) -> list[dict]:
    """Suites newest first, with their spec decoded and `spec_key` (scale and limit) for reuse."""
    result = []
    for suite in store.list_suites():
        spec = json.loads(suite["spec"])
        result.append({**suite, **spec, "spec_key": json.dumps(
            {"epochs_scale": spec["epochs_scale"], "limit": spec["limit"]}, sort_keys=True)})
    return result


def latest_suite(store: Store) -> dict | None:
    found = suites(store)
    return found[0] if found else None


def get_suite(store: Store, suite_id: int) -> dict | None:
    """One suite as `suites` gives it, or None."""
    return next((suite for suite in suites(store) if suite["id"] == suite_id), None)


def stop_suite(store: Store, suite: dict, stop_run: Callable[[int], None] | None = None) -> int:
    """Stop a suite: its queued runs are dropped, its running one ends after its current batch,
    its search stops. `stop_run` stops one run (the dashboard's job manager, which also reaches
    a run this process trains; default: the store's request). Returns the runs it stopped."""
    stop = stop_run or store.request_stop
    active = [run_id for run_id in dict.fromkeys(suite["runs"].values())
              if (run := store.get_run(run_id)) is not None and run.status in ACTIVE_STATES]
    for run_id in active:
        stop(run_id)
    if store.get_search(suite["search_id"]) is not None:
        trials = [run.id for run in store.list_runs(search_id=suite["search_id"]) if run.status in ACTIVE_STATES]
        stop_search(store, suite["search_id"], stop)
        active += trials
    return len(active)


def remove_suite(store: Store, suite: dict, stop_run: Callable[[int], None] | None = None) -> int:
    """Stop a suite and forget it (the Study page then shows the one before). Its runs and search
    stay in the store as ordinary runs, with the epochs and models they made. Returns runs stopped."""
    stopped = stop_suite(store, suite, stop_run)
    store.delete_suite(suite["id"])
    return stopped


def run_suite(store: Store, suite: dict, *, load_data: Callable, on_run: Callable | None = None,
              **train_options) -> None:
    """Train a suite's queued runs here, one after another, then its search's trials.

    A run another worker has already claimed is left to it. A `stop_event` in `train_options`
    (set by SIGTERM/SIGINT in the command line) stops the run in training and starts no other.
    """
    from .train import train_run

    stop_event = train_options.get("stop_event")
    run_ids = list(dict.fromkeys(suite["runs"].values()))
    for number, run_id in enumerate(run_ids, start=1):
        if stop_event is not None and stop_event.is_set():
            return
        run = store.get_run(run_id)
        if run is None or run.status != QUEUED or not store.claim_run(run_id):  # None: deleted
            continue
        if on_run is not None:
            on_run(number, len(run_ids), run)
        train_run(store, run_id, load_data=load_data, **train_options)
    if stop_event is None or not stop_event.is_set():
        run_search(store, suite["search_id"], load_data=load_data, **train_options)


# -- results ---------------------------------------------------------------------------------
def _search_best(store: Store, search_id: int) -> tuple[dict | None, str]:
    from .search import best_trial, get_spec

    best = best_trial(store, search_id)
    if best is None:
        return None, ""
    config = best.config
    values = [param_value(p, config) for p in get_spec(store, search_id).space.params]
    return best, "filters " + "/".join(map(str, values[:-1])) + f", dense {values[-1]}"


def study_table(store: Store, suite: dict | None) -> list[dict]:
    """The study's table with our result beside each line (ours empty until a run has an epoch)."""
    experiments = {e.key: e for e in study_experiments()}
    rows = []
    for figure in STUDY_FIGURES:
        experiment = experiments[figure.key]
        run, ours_note, status = None, "", ""
        if suite is not None and figure.key == SEARCH_KEY:
            from .search import summary

            run, ours_note = _search_best(store, suite["search_id"])
            info = summary(store, suite["search_id"])
            status = f"search {info['id']}: {info['status']}, {info['completed']}/{info['planned']} trials"
        elif suite is not None:
            run = store.get_run(suite["runs"][figure.key])
            status = run.status if run else "not run (its run is no longer in the store)"
        rows.append({"part": experiment.part, "experiment": experiment.setting,
                     "study accuracy": figure.accuracy, "study note": figure.note,
                     "our accuracy": run.best_val_accuracy if run else None,
                     "our best epoch": run.best_epoch if run else None,
                     "our note": ours_note, "status": status, "run": run.id if run else None})
    return rows


def study_frame(store: Store, suite: dict | None):
    import pandas as pd

    columns = ["part", "experiment", "study accuracy", "study note", "our accuracy", "our best epoch",
               "our note", "status", "run"]
    return pd.DataFrame(study_table(store, suite), columns=columns)


def comparison_curves(store: Store, suite: dict, title: str):
    """Long-form curves (as views.curves) of one comparison's runs, `run` = the setting's label."""
    from .views import curves

    pairs = dict(COMPARISONS)[title]
    ids = [suite["runs"][key] for _, key in pairs]
    frame = curves(store, ids)
    labels = {suite["runs"][key]: label for label, key in pairs}
    frame["run"] = frame["run_id"].map(labels)
    return frame


def progress(store: Store, suite: dict) -> dict:
    """How many of the suite's runs (search trials included) are in each status."""
    counts: dict[str, int] = {}
    runs = [run for run in map(store.get_run, dict.fromkeys(suite["runs"].values())) if run is not None]
    runs += store.list_runs(search_id=suite["search_id"])
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return counts
