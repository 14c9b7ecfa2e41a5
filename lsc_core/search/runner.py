"""How a search runs: trials as ordinary runs in the store, resume, stop, results.

Each trial is a normal run named `search<ID>-trial<N>` with the search's id, so every run
view works on it, and the queue is the store, as for any run. The plan itself (what to
try) comes from lsc_core/search/space.py. Reads never write: a search is marked completed
where its last trial ends (`trial_finished`), not when a page looks at it.
"""
from __future__ import annotations

from typing import Callable

from ..config import RunConfig, validate
from ..store import ACTIVE_STATES, COMPLETED, FINISHED_STATES, INTERRUPTED, QUEUED, RUNNING, STOPPED, Run, Store
from .space import SearchSpec, check_spec, default_search_name, param_value, plan_trials, plan_values

__all__ = ["SEARCH_RUNNING", "SEARCH_STOPPED", "SEARCH_COMPLETED", "create_search", "launch_search",
           "get_spec", "queue_missing_trials", "resume_searches", "stop_search", "interrupt_search",
           "reopen_search", "trial_finished", "run_search", "ranked_trials", "results_rows", "results_frame",
           "best_trial", "summary", "summaries", "running_twin", "search_options"]

# Search states. A running search becomes completed once none of its trials is active.
SEARCH_RUNNING, SEARCH_STOPPED, SEARCH_COMPLETED = "running", "stopped", "completed"


def create_search(store: Store, spec: SearchSpec, name: str | None = None) -> int:
    """Record a (valid) search without queuing anything; returns its id."""
    check_spec(spec)
    return store.create_search(name or default_search_name(spec), spec.to_json())


def launch_search(store: Store, spec: SearchSpec, name: str | None = None) -> int:
    """Record a search and queue all its trials for the background worker; returns its id."""
    search_id = create_search(store, spec, name)
    queue_missing_trials(store, search_id)
    return search_id


def get_spec(store: Store, search_id: int) -> SearchSpec:
    """A stored search's spec, parsed only: it was checked when created, and pages read it every refresh."""
    return SearchSpec.from_json(store.get_search(search_id)["spec"], check=False)


def _trials_by_name(store: Store, search_id: int) -> dict[str, Run]:
    return {run.name: run for run in store.list_runs(search_id=search_id)}


def queue_missing_trials(store: Store, search_id: int) -> list[int]:
    """Queue planned trials that have no run yet; returns the new run ids.

    Each trial is created by the store only if no run of the search has its name yet,
    checked and inserted in one transaction: two processes resuming the same search at
    once cannot create a trial twice. An idle worker finds the new runs within its poll.
    """
    existing = _trials_by_name(store, search_id)
    created = (store.create_trial_once(validate(config), search_id)
               for config in plan_trials(get_spec(store, search_id), search_id) if config.name not in existing)
    return [run_id for run_id in created if run_id is not None]


def resume_searches(store: Store) -> list[int]:
    """After a restart: requeue interrupted trials of unfinished searches and queue missing ones.

    Completed, failed and stopped trials are kept. A search with a trial running in a
    live process (e.g. `python -m lsc_core search`) is that process's to continue and is
    left alone. Returns the ids of runs (re)queued; trials are created by the store
    atomically (queue_missing_trials), and workers find them by polling the queue.
    """
    store.mark_dead_runs_interrupted()  # so a trial still 'running' now has a live owner
    queued = []
    for search in store.list_searches(status=SEARCH_RUNNING):
        if store.list_runs(search_id=search["id"], status=RUNNING):
            continue
        for run in store.list_runs(search_id=search["id"], status=INTERRUPTED):
            store.requeue(run.id)
            queued.append(run.id)
        queued += queue_missing_trials(store, search["id"])
    return queued


def stop_search(store: Store, search_id: int, stop_run: Callable[[int], None] | None = None) -> None:
    """Stop a search: its queued trials are dropped, its running trial stops after the batch."""
    store.set_search_status(search_id, SEARCH_STOPPED)
    for run in store.list_runs(search_id=search_id):
        if run.status in ACTIVE_STATES:
            (stop_run or store.request_stop)(run.id)


def interrupt_search(store: Store, search_id: int, trial_name: str | None = None) -> None:
    """A search cut short in the foreground (Ctrl-C): stopped, so that no dashboard start
    resumes it unasked; the trial it was training is marked interrupted, so that
    `--resume` (reopen_search + run_search) trains that trial again."""
    stop_search(store, search_id)
    run = _trials_by_name(store, search_id).get(trial_name) if trial_name else None
    if run is not None and run.status in (STOPPED, RUNNING):
        store.finish_run(run.id, INTERRUPTED, "interrupted from the keyboard; resuming the search trains it again")


def reopen_search(store: Store, search_id: int) -> list[int]:
    """Set a stopped search running again, its trials dropped from the queue by the stop queued
    again (trials that trained are kept as they are); returns the requeued run ids."""
    store.set_search_status(search_id, SEARCH_RUNNING)
    requeued = []
    for run in store.list_runs(search_id=search_id, status=STOPPED):
        if run.started_at is None:  # stopped while queued: it never trained
            store.requeue(run.id)
            requeued.append(run.id)
    return requeued


def trial_finished(store: Store, search_id: int) -> str:
    """Called where a trial ends (the worker, run_search): a running search whose planned
    trials have all finished (none interrupted) is marked completed. Returns its status."""
    search = store.get_search(search_id)
    if search is None or search["status"] != SEARCH_RUNNING:
        return search["status"] if search else SEARCH_STOPPED
    runs = store.list_runs(search_id=search_id)
    planned = len(plan_values(get_spec(store, search_id)))
    if len(runs) >= planned and all(run.status in FINISHED_STATES and run.status != INTERRUPTED
                                    for run in runs):
        store.set_search_status(search_id, SEARCH_COMPLETED)
        return SEARCH_COMPLETED
    return SEARCH_RUNNING


def run_search(store: Store, search_id: int, *, load_data: Callable, on_trial: Callable | None = None,
               **train_options) -> list[dict]:
    """Train a search's remaining trials here, in the foreground, one after another.

    Trials already finished are kept; an interrupted or still-queued one is taken over
    (unless another worker claims it first). `on_trial(number, total, config)` is called
    before each trial. Returns the trial runs, best first. A `stop_event` in `train_options`
    (set by SIGTERM/SIGINT in the command line) stops the trial in training and starts no other.
    """
    from ..train import train_run

    stop_event = train_options.get("stop_event")
    configs = plan_trials(get_spec(store, search_id), search_id)
    for number, config in enumerate(configs, start=1):
        if store.get_search(search_id)["status"] == SEARCH_STOPPED or stop_event is not None and stop_event.is_set():
            break
        run = _trials_by_name(store, search_id).get(config.name)
        if run is None:
            run_id = store.create_run(config, status=RUNNING, search_id=search_id)
        elif run.status in (QUEUED, INTERRUPTED):
            if run.status == INTERRUPTED:
                store.requeue(run.id)
            if not store.claim_run(run.id):
                continue  # another worker took it
            run_id = run.id
        else:
            continue  # finished (or running elsewhere): kept as it is
        if on_trial is not None:
            on_trial(number, len(configs), config)
        train_run(store, run_id, load_data=load_data, **train_options)
    trial_finished(store, search_id)
    return ranked_trials(store, search_id)


# -- results ---------------------------------------------------------------------------------
def ranked_trials(store: Store, search_id: int) -> list[dict]:
    """The search's trial runs, best test accuracy first (runs without one last, by trial)."""
    runs = store.list_runs(search_id=search_id)
    return sorted(runs, key=lambda run: (run.best_val_accuracy is None, -(run.best_val_accuracy or 0),
                                         run.id))


def results_rows(store: Store, search_id: int) -> list[dict]:
    """One row per trial: trial number, run, status, each searched value, accuracy; best first."""
    spec = get_spec(store, search_id)
    rows = []
    for run in ranked_trials(store, search_id):
        config = run.config
        row = {"trial": int(run.name.rsplit("trial", 1)[-1]), "run": run.id, "status": run.status}
        row.update({p.name: param_value(p, config) for p in spec.space.params})
        row.update({"best test accuracy": run.best_val_accuracy, "best epoch": run.best_epoch,
                    "params": run.params})
        rows.append(row)
    return rows


def results_frame(store: Store, search_id: int):
    """results_rows as a DataFrame (columns fixed even before any trial exists)."""
    import pandas as pd

    spec = get_spec(store, search_id)
    columns = ["trial", "run", "status", *[p.name for p in spec.space.params], "best test accuracy",
               "best epoch", "params"]
    return pd.DataFrame(results_rows(store, search_id), columns=columns)


def best_trial(store: Store, search_id: int) -> Run | None:
    """The completed (or stopped) trial with the best test accuracy, or None yet."""
    scored = [run for run in ranked_trials(store, search_id) if run.best_val_accuracy is not None]
    return scored[0] if scored else None


def summary(store: Store, search_id: int) -> dict:
    """A search's status, strategy, trials completed and planned, best accuracy so far (reads only)."""
    search = store.get_search(search_id)
    runs = store.list_runs(search_id=search_id)
    best = best_trial(store, search_id)
    spec = get_spec(store, search_id)
    return {"id": search_id, "name": search["name"], "status": search["status"],
            "strategy": spec.strategy, "labels": spec.label_mode, "epochs": spec.epochs,
            "completed": sum(run.status == COMPLETED for run in runs), "planned": len(plan_values(spec)),
            "best test accuracy": best.best_val_accuracy if best else None, "created": search["created_at"]}


def summaries(store: Store) -> list[dict]:
    """Every search's summary, newest first."""
    return [summary(store, search["id"]) for search in store.list_searches()]


def running_twin(store: Store, spec: SearchSpec) -> dict | None:
    """A running search with exactly this spec, if there is one (launching it again repeats it)."""
    wanted = spec.to_json()
    return next((s for s in store.list_searches(status=SEARCH_RUNNING) if s["spec"] == wanted), None)


def search_options(searches: list[dict]) -> dict[int, str]:
    """Search id -> how the Search page's picker names it, e.g. '3: random search (running, 4/10 trials done)'."""
    return {s["id"]: f"{s['id']}: {s['name']} ({s['status']}, {s['completed']}/{s['planned']} trials done)"
            for s in searches}


