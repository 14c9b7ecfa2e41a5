"""Benchmark: faults injected into real training runs, which are then resumed; counts what was lost.

Each trial trains a small run from the command line (`python -m lsc_core train`) in a store
of its own and hits it, at a random point, with kill -9 or SIGTERM (a kill can land while
data loads, in the middle of an epoch, while it is validated or while the checkpoint and
the best model are written). It then continues the run with `train --resume ID`, which may
be hit again, until the run completes. At the end each run is checked as the issue asks:
`completed`, each planned epoch stored exactly once, the saved model of the store's best
epoch, and that model's accuracy on the validation data equal to the store's best.

    python bench/faults.py                                   # 8 trials on tiny synthetic data
    LSC_DATA=../shared/data/cifar100.npz python bench/faults.py --trials 10 --limit 2000

It prints one line per trial and the counts: faults injected (and how many of them hit a
run in training rather than one already finished or not yet recorded), runs resumed, epochs lost
(must be 0), runs whose saved model is not the store's best (must be 0). Exit status 1
when anything was lost.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lsc_core.store import COMPLETED, RUNNING, Store  # noqa: E402

POLL_S = 0.05  # how often the store is read while waiting for a fault point
MAX_ATTEMPTS = 8  # resumes per trial before it counts as lost
ACCURACY_TOLERANCE = 1e-4  # saved model against the store's best (same data, same model: float noise only)


@dataclass
class Trial:
    """What happened to one run."""

    number: int
    run_id: int | None = None
    faults: list[str] = field(default_factory=list)
    resumes: int = 0
    epochs_lost: int = 0
    problems: list[str] = field(default_factory=list)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="runs to hit (default 8)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4)")
    parser.add_argument("--preset", default="seed-part1", help="network (default seed-part1)")
    parser.add_argument("--limit", type=int, default=400, help="training images (default 400)")
    parser.add_argument("--batch-size", type=int, default=50, help="default 50")
    parser.add_argument("--again", type=float, default=0.3,
                        help="chance that a resumed process is hit again (default 0.3)")
    parser.add_argument("--data", help="CIFAR-100 path (default $LSC_DATA, else tiny synthetic data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault points (default 0)")
    return parser.parse_args(argv)


def synthetic_data(folder: Path) -> Path:
    """Tiny learnable data in the shared .npz format (the tests' generator)."""
    sys.path.insert(0, str(REPO / "tests"))
    from cifar_files import synthetic_arrays, write_npz

    return write_npz(folder / "tiny.npz", synthetic_arrays(n_train_per_class=4, n_test_per_class=1, seed=0))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lsc_core", *args]


def hit(process: subprocess.Popen, store: Store, epochs: int, rng: random.Random) -> str | None:
    """Wait for a random point of the run (after k stored epochs, then a random part of the next
    epoch's time) and send kill -9 or SIGTERM; what was done, or None when it ended first."""
    after_epochs = rng.randrange(epochs)
    kind = rng.choice(["SIGKILL", "SIGKILL", "SIGTERM"])
    started = time.monotonic()
    rows = []
    while process.poll() is None:
        runs = store.list_runs()
        rows = store.epochs(runs[0].id) if runs else []
        if len(rows) >= after_epochs:
            break
        time.sleep(POLL_S)
    # Somewhere in the next epoch, judged by the last one's wall time; before the first
    # epoch, anywhere in start-up (imports, data, model) and the first epoch.
    window = rows[-1]["seconds"] if after_epochs and rows else 8.0
    time.sleep(rng.uniform(0, window))
    if process.poll() is not None:
        return None
    runs = store.list_runs()
    status = runs[0].status if runs else "not recorded yet"
    process.send_signal(getattr(signal, kind))
    process.wait()
    return (f"{kind} after {after_epochs} stored epoch(s) + {time.monotonic() - started:.1f} s"
            f"{'' if status == RUNNING else f' (run {status})'}")


def run_trial(number: int, args, data: Path, folder: Path, rng: random.Random) -> Trial:
    trial = Trial(number)
    db = folder / f"trial-{number}.sqlite"
    env = {key: value for key, value in os.environ.items() if key != "LSC_ARTIFACTS"}  # each store its own folder
    command = cli("train", "--preset", args.preset, "--labels", "fine", "--epochs", str(args.epochs),
                  "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--seed", str(number),
                  "--data", str(data), "--db", str(db))
    store = None
    for attempt in range(MAX_ATTEMPTS):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        store = store or _wait_for_store(db, process)
        if attempt == 0 or rng.random() < args.again:
            fault = hit(process, store, args.epochs, rng)
            if fault:
                trial.faults.append(fault)
        stderr = process.communicate()[1]
        runs = store.list_runs() if store else []
        if not runs:
            trial.problems.append(f"no run was recorded: {stderr.strip()[-200:]}")
            return trial
        run = store.get_run(runs[0].id)
        trial.run_id = run.id
        if run.status == COMPLETED:
            break
        if process.returncode == 0:
            trial.problems.append(f"exit 0 but run {run.id} is {run.status}")
            break
        trial.resumes += 1
        command = cli("train", "--resume", str(run.id), "--data", str(data), "--db", str(db))
    check(trial, store, args.epochs, data)
    return trial


def _wait_for_store(db: Path, process: subprocess.Popen) -> Store | None:
    """The trial's store, once the CLI has created it (None if the process ended before)."""
    while not db.exists():
        if process.poll() is not None:
            return None
        time.sleep(POLL_S)
    return Store(db)


def check(trial: Trial, store: Store | None, epochs: int, data: Path) -> None:
    """Completed, epochs 1..N once each, the saved model is the best epoch's and scores its accuracy."""
    if store is None or trial.run_id is None:
        trial.epochs_lost = epochs
        return
    run = store.get_run(trial.run_id)
    stored = [row["epoch"] for row in store.epochs(run.id)]
    trial.epochs_lost = len(set(range(1, epochs + 1)) - set(stored))
    if sorted(stored) != list(range(1, epochs + 1)):
        trial.problems.append(f"epochs stored {sorted(stored)}")
    if run.status != COMPLETED:
        trial.problems.append(f"ended {run.status}: {run.error}")
    if run.model_epoch != run.best_epoch:
        trial.problems.append(f"saved model is epoch {run.model_epoch}, best is {run.best_epoch}")
    accuracy = saved_model_accuracy(run, data)
    if accuracy is None or abs(accuracy - (run.best_val_accuracy or -1)) > ACCURACY_TOLERANCE:
        trial.problems.append(f"saved model scores {accuracy}, the store's best is {run.best_val_accuracy}")


def saved_model_accuracy(run, data_path: Path) -> float | None:
    """The saved model's accuracy on the run's validation data (None without a loadable model)."""
    import numpy as np

    from lsc_core.data import load_cifar100, split_data
    from lsc_core.evaluate import predict_probabilities
    from lsc_core.model import ModelUnavailable, load_run_model

    try:
        model = load_run_model(run)
    except ModelUnavailable:
        return None
    config = run.config
    split = split_data(load_cifar100(data_path), config.label_mode, validation=config.validation,
                       holdout_fraction=config.holdout_fraction, limit=config.limit, seed=config.seed)
    return float(np.mean(predict_probabilities(model, split.x_val).argmax(axis=1) == split.y_val))


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="lsc-faults-") as tmp:
        folder = Path(tmp)
        data = Path(args.data or os.environ.get("LSC_DATA") or synthetic_data(folder))
        print(f"{args.trials} trials of {args.preset}, {args.epochs} epochs on {args.limit} images of {data}")
        trials = []
        for number in range(1, args.trials + 1):
            trial = run_trial(number, args, data, folder, rng)
            trials.append(trial)
            verdict = "; ".join(trial.problems) or "completed, every epoch once, model = best epoch"
            print(f"trial {number} (run {trial.run_id}): {' / '.join(trial.faults) or 'no fault landed'}; "
                  f"{trial.resumes} resume(s); {verdict}", flush=True)
    faults = sum(len(t.faults) for t in trials)
    in_training = sum(1 for t in trials for fault in t.faults if "(run " not in fault)
    resumed = sum(1 for t in trials if t.resumes)
    lost = sum(t.epochs_lost for t in trials)
    wrong = sum(1 for t in trials if t.problems)
    print(f"faults injected: {faults} ({in_training} into a run in training); runs resumed: {resumed}; epochs lost: {lost}; "
          f"runs with a problem: {wrong} of {len(trials)}")
    return 1 if lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
