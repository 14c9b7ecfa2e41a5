"""SIGTERM and SIGINT stop a command-line run cleanly: `stopped`, its best model saved, one line."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lsc_core.model import load_run_model
from lsc_core.store import STOPPED, Store

REPO = Path(__file__).resolve().parent.parent


def start_after_an_epoch(db: Path, *arguments: str) -> subprocess.Popen:
    """`python -m lsc_core ARGUMENTS --db DB`, which trains far longer than the test waits;
    returns it once the store has an epoch (AssertionError, with its stderr, when it never does)."""
    process = subprocess.Popen([sys.executable, "-m", "lsc_core", *arguments, "--db", str(db)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if db.exists() and Store(db).epoch_counts():
            return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"training did not start: {process.communicate()[1][-2000:]}")


def start_training(db: Path, tiny_npz) -> subprocess.Popen:
    """`python -m lsc_core train` for 500 epochs, once an epoch is stored."""
    return start_after_an_epoch(db, "train", "--preset", "seed-part1", "--epochs", "500", "--batch-size", "16",
                                "--data", str(tiny_npz))


@pytest.mark.parametrize("number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_cleanly_with_its_best_model_saved(tmp_path, tiny_npz, tiny_data, number, code):
    db = tmp_path / "runs.sqlite"
    process = start_training(db, tiny_npz)
    try:
        process.send_signal(number)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    (run,) = Store(db).list_runs()
    epochs = Store(db).epochs(run.id)
    assert code == process.returncode, err[-2000:]
    # One line of ours (TensorFlow's start-up notes, which no setting silences, come before it).
    assert f"stopped by {number.name} after epoch {epochs[-1]['epoch']}; resume with: " \
           f"python -m lsc_core train --resume {run.id}" == err.strip().splitlines()[-1]
    assert "Traceback" not in err and 1 == err.count("stopped by")
    assert (STOPPED, None, run.best_epoch) == (run.status, run.error, run.model_epoch)
    assert 1 <= len(epochs) < 500
    model = load_run_model(run)  # saved, and the store's best epoch: it reproduces that epoch's accuracy
    predicted = np.argmax(model.predict(tiny_data.x_test.astype("float32"), verbose=0), axis=1)
    assert run.best_val_accuracy == pytest.approx(float(np.mean(predicted == tiny_data.labels("test", "coarse"))),
                                                  abs=1e-6)
    assert f"run {run.id} stopped: best so far {run.best_val_accuracy:.4f} at epoch {run.best_epoch}" in out


def test_a_second_signal_while_stopping_exits_at_once_without_a_traceback(tmp_path, tiny_npz):
    db = tmp_path / "runs.sqlite"
    process = start_training(db, tiny_npz)
    try:
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    # At once ("interrupted"), or, where both signals arrived before Python handled the first, as one.
    assert err.strip().splitlines()[-1] in ("interrupted", f"stopped by SIGTERM after epoch "
                                            f"{Store(db).epochs(1)[-1]['epoch']}; resume with: python -m lsc_core "
                                            "train --resume 1")
    (run,) = Store(db).list_runs()
    assert STOPPED == run.status and Store(db).epochs(run.id)  # its epochs kept


def test_sigterm_stops_a_command_line_search_and_its_trial_cleanly(tmp_path, tiny_npz):
    from test_search import tiny_space

    from lsc_core import search
    from lsc_core.store import INTERRUPTED

    db, space = tmp_path / "runs.sqlite", tmp_path / "space.json"
    space.write_text(tiny_space().to_json())
    process = start_after_an_epoch(db, "search", "--space", str(space), "--trials", "2", "--epochs", "200",
                                   "--limit", "64", "--data", str(tiny_npz))
    try:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    store = Store(db)
    (found,) = store.list_searches()
    assert 143 == process.returncode, err[-2000:]
    assert "Traceback" not in err
    assert f"python -m lsc_core search --resume {found['id']}" in err.strip().splitlines()[-1]
    assert search.SEARCH_STOPPED == found["status"]
    (trial,) = store.list_runs(search_id=found["id"])  # the second trial never started
    # Ended after its batch with its epochs kept, then marked so that --resume trains it again.
    assert INTERRUPTED == trial.status and store.epochs(trial.id)
