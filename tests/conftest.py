"""Shared fixtures: a fresh store, tiny learnable CIFAR-100-format data, real data when present."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))  # tests/cifar_files.py

from cifar_files import synthetic_arrays, write_npz  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("LSC_DATA") or REPO.parent / "shared" / "data" / "cifar100.npz")


@pytest.fixture(autouse=True)
def streamlit_clean_up_restored(monkeypatch):
    """Each test starts with Streamlit's own end-of-run clean-up: app.py replaces it for the whole
    process (tests/test_app_keras_state.py), and a test that ran app.py would otherwise change it
    for every test after it."""
    from streamlit.runtime.scriptrunner import script_runner

    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh runs.sqlite with its artifacts beside it."""
    from lsc_core.store import Store

    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)
    return Store(tmp_path / "runs.sqlite")


@pytest.fixture(scope="session")
def tiny_arrays():
    """CIFAR-100 layout, 4 train and 1 test image per fine class, learnable colours."""
    return synthetic_arrays(n_train_per_class=4, n_test_per_class=1, seed=0)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory, tiny_arrays):
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz", tiny_arrays)


@pytest.fixture(scope="session")
def tiny_data(tiny_npz):
    from lsc_core.data import load_cifar100

    return load_cifar100(tiny_npz)


@pytest.fixture
def real_data_path():
    if not REAL_DATA.exists():
        pytest.skip(f"real CIFAR-100 not found at {REAL_DATA} (set LSC_DATA to run this test)")
    return REAL_DATA


@pytest.fixture
def app_env(tmp_path, monkeypatch, tiny_npz):
    """The dashboard's environment for an AppTest: a fresh store and tiny data; returns the
    store path. Afterwards this store's background worker is stopped, so that it does not
    go on training beside later tests."""
    db = tmp_path / "runs.sqlite"
    monkeypatch.setenv("LSC_DB", str(db))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.setenv("LSC_ARTIFACTS", str(tmp_path / "artifacts"))
    yield db
    from lsc_core.jobs import manager_for

    manager = manager_for(db, create=False)
    if manager is not None:
        manager.shutdown(timeout=60)

