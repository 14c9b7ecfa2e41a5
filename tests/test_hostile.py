"""Fault injection: hostile configs, stores and model files, each given to the real command line.

Every case must end in exactly one `error:` line on stderr, a non-zero exit status and
no traceback, and must leave every file it was near unchanged (compared by hash): the
store it was pointed at, a store beside it and the hostile file itself. The corpus is
written by fixtures into a folder per test (tests/hostile_corpus.py says what each
case is).
"""
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_corpus import CONFIGS, NUMERIC_FLAGS

REPO = Path(__file__).resolve().parent.parent


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> SHA-256), to prove nothing changed."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lsc_core", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})


def assert_one_error_line(result: subprocess.CompletedProcess, expected: str) -> None:
    """Non-zero exit, one stderr line starting 'error:' that contains `expected`, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


@pytest.fixture
def corpus(tmp_path, store):
    """A folder with a store holding one completed run, and the hostile files beside it."""
    from lsc_core.config import preset
    from lsc_core.store import RUNNING

    run_id = store.create_run(preset("seed-part1", epochs=1), status=RUNNING)
    store.log_epoch(run_id, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}, 1.0)
    store.finish_run(run_id, "completed")
    store.db.conn.close()  # the last connection: SQLite folds the WAL into the store file and removes it
    return tmp_path


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_config_is_one_line_and_changes_nothing(corpus, name):
    content, expected = CONFIGS[name]
    config = corpus / f"{name}.json"
    config.write_bytes(content)
    before = tree_hashes(corpus)
    result = run_cli("train", "--config", str(config), "--db", str(corpus / "runs.sqlite"),
                     "--data", str(corpus / "no-data.npz"), cwd=corpus)
    assert_one_error_line(result, expected)
    assert before == tree_hashes(corpus)


@pytest.mark.parametrize("args, expected", NUMERIC_FLAGS, ids=[" ".join(a) for a, _ in NUMERIC_FLAGS])
def test_hostile_numeric_flag_is_one_line_and_changes_nothing(corpus, args, expected):
    before = tree_hashes(corpus)
    result = run_cli(*args, "--db", str(corpus / "runs.sqlite"), cwd=corpus)
    assert_one_error_line(result, expected)
    assert before == tree_hashes(corpus)
