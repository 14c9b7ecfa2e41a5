"""Fault injection: hostile configs, stores and model files, each given to the real command line.

Every case must end in exactly one `error:` line on stderr, a non-zero exit status and
no traceback, and must leave every file it was near unchanged (compared by hash): the
store it was pointed at, a store beside it and the hostile file itself. The corpus is
written by fixtures into a folder per test (tests/hostile_corpus.py says what each
case is).
"""
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hostile_corpus import CONFIGS, MODELS, NUMERIC_FLAGS, SPACES, STORE_COMMANDS, STORES

REPO = Path(__file__).resolve().parent.parent
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


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
    # Test-set predictions: the store spans about a hundred pages, as a real one does.
    probabilities = np.random.default_rng(0).random((2000, 100))
    store.save_predictions(run_id, probabilities, np.arange(2000) % 100, np.arange(2000) % 20, "fine")
    store.db.conn.close()  # the last connection: SQLite folds the WAL into the store file and removes it
    return tmp_path


@pytest.mark.parametrize("command", sorted(STORE_COMMANDS))
@pytest.mark.parametrize("name", sorted(STORES))
def test_hostile_store_is_one_line_and_left_as_it_is(corpus, tiny_npz, name, command):
    writer, expected = STORES[name]
    path = corpus / f"{name}.sqlite"
    writer(path, corpus / "runs.sqlite")
    before = tree_hashes(corpus)
    data = ["--data", str(tiny_npz)] if command == "train" else []
    result = run_cli(*STORE_COMMANDS[command], "--db", str(path), *data, cwd=corpus)
    assert_one_error_line(result, expected)
    assert before == tree_hashes(corpus)


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


@pytest.mark.parametrize("name", sorted(SPACES))
def test_hostile_search_space_is_one_line_and_changes_nothing(corpus, name):
    content, expected = SPACES[name]
    space = corpus / f"{name}.json"
    space.write_bytes(content)
    before = tree_hashes(corpus)
    result = run_cli("search", "--space", str(space), "--db", str(corpus / "runs.sqlite"),
                     "--data", str(corpus / "no-data.npz"), cwd=corpus)
    assert_one_error_line(result, expected)
    assert before == tree_hashes(corpus)


@pytest.mark.parametrize("args, expected", NUMERIC_FLAGS, ids=[" ".join(a) for a, _ in NUMERIC_FLAGS])
def test_hostile_numeric_flag_is_one_line_and_changes_nothing(corpus, args, expected):
    before = tree_hashes(corpus)
    result = run_cli(*args, "--db", str(corpus / "runs.sqlite"), cwd=corpus)
    assert_one_error_line(result, expected)
    assert before == tree_hashes(corpus)


@pytest.fixture
def small_mount(tmp_path):
    """A 16 MB tmpfs (root only; skipped where mounting is not permitted): (folder, remount(options))."""
    folder = tmp_path / "mount"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({mounted.stderr.decode().strip() or 'not root'})")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    yield folder, remount
    subprocess.run(["umount", "-l", str(folder)], check=True)


def store_with_a_dead_run(db: Path) -> None:
    """A closed store holding a completed run and one left 'running' by a process that is gone."""
    from lsc_core.config import preset
    from lsc_core.store import RUNNING, Store

    store = Store(db)
    done = store.create_run(preset("seed-part1", epochs=1), status=RUNNING)
    store.finish_run(done, "completed")
    dead = store.create_run(preset("seed-part1", epochs=3), status=RUNNING)
    store.log_epoch(dead, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}, 1.0)
    gone = subprocess.Popen(["true"])
    gone.wait()
    store.db.execute("UPDATE runs SET pid = ?, heartbeat_at = 0 WHERE id = ?", [gone.pid, dead])
    store.db.conn.close()


def test_read_only_store_with_dead_runs_is_listed_and_refuses_writes_in_one_line(small_mount, tiny_npz):
    folder, remount = small_mount
    db = folder / "runs.sqlite"
    store_with_a_dead_run(db)
    remount("ro")
    before = tree_hashes(folder)
    listed = run_cli("runs", "--db", str(db), cwd=folder.parent)
    assert (0, "") == (listed.returncode, listed.stderr)
    assert 2 == sum(line.split()[2] in ("completed", "running") for line in listed.stdout.splitlines()[1:])
    trained = run_cli("train", "--preset", "seed-part1", "--epochs", "1", "--data", str(tiny_npz), "--db", str(db),
                      cwd=folder.parent)
    assert_one_error_line(trained, "is read-only: nothing can be recorded in it")
    assert before == tree_hashes(folder)


def test_read_only_store_of_an_older_schema_is_one_line(small_mount):
    import sqlite_utils

    from lsc_core.store import MIGRATIONS

    folder, remount = small_mount
    db = sqlite_utils.Database(folder / "runs.sqlite")
    for step in MIGRATIONS[:4]:  # a store as the first release left it
        step(db)
    db.execute("PRAGMA user_version = 4")
    db.close()
    remount("ro")
    before = tree_hashes(folder)
    result = run_cli("runs", "--db", str(folder / "runs.sqlite"), cwd=folder.parent)
    assert_one_error_line(result, "read-only and has schema version 4, older than this code's")
    assert before == tree_hashes(folder)


@pytest.mark.parametrize("name", ["foreign-sqlite", "text-file", "overwritten-pages", "newer-store"])
@pytest.mark.parametrize("page", ["app_pages/home.py", "app_pages/runs.py", "app_pages/evaluate.py"])
def test_dashboard_on_a_hostile_store_shows_one_error(corpus, monkeypatch, tiny_npz, name, page):
    from streamlit.testing.v1 import AppTest

    writer, expected = STORES[name]
    path = corpus / f"{name}.sqlite"
    writer(path, corpus / "runs.sqlite")
    before = tree_hashes(corpus)
    monkeypatch.setenv("LSC_DB", str(path))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    if page != "app_pages/home.py":
        at.switch_page(page)
    at.run()
    assert [] == at.exception
    assert 1 == len(at.error) and expected in at.error[0].value.replace("\\", ""), [e.value for e in at.error]
    # The store file is unchanged; a damaged one that opened keeps SQLite's empty side files
    # (-wal, -shm) while this server process holds it open.
    after = tree_hashes(corpus)
    assert before == {name: digest for name, digest in after.items() if not name.endswith(("-wal", "-shm"))}
    assert all(after[name] == EMPTY_SHA256 for name in after if name.endswith("-wal"))


def test_dashboard_shows_a_read_only_store(small_mount, monkeypatch, tiny_npz):
    from streamlit.testing.v1 import AppTest

    from lsc_core.jobs import manager_for

    folder, remount = small_mount
    db = folder / "runs.sqlite"
    store_with_a_dead_run(db)
    remount("ro")
    before = tree_hashes(folder)
    monkeypatch.setenv("LSC_DB", str(db))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.switch_page("app_pages/runs.py").run()
        assert ([], []) == (at.exception, [e.value for e in at.error])
        assert 1 == len(at.subheader)  # the newest run, opened
    finally:
        manager = manager_for(db, create=False)
        if manager is not None:
            manager.shutdown(timeout=60)
    assert before == tree_hashes(folder)


def test_disk_full_while_saving_keeps_the_run_completed_and_no_partial_file(small_mount, monkeypatch, store,
                                                                           tiny_data):
    """The model's folder on a real 16 MB file system filled to its last 64 kB: the save fails
    with ENOSPC (no mock), the run stays completed with the reason, its epochs are kept."""
    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.model import ModelUnavailable, load_run_model
    from lsc_core.store import COMPLETED, RUNNING
    from lsc_core.train import train_run

    folder, _ = small_mount
    monkeypatch.setenv("LSC_ARTIFACTS", str(folder))
    filler = folder / "filler"
    free = os.statvfs(folder)
    filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 64 * 1024))
    layers = (LayerSpec.make("conv2d", filters=16), LayerSpec.make("flatten"), LayerSpec.make("dense", units=64))
    run_id = store.create_run(RunConfig(layers=layers, epochs=2, batch_size=32), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    assert COMPLETED == run.status
    assert "No space left on device" in run.error and "could not be saved" in run.error
    assert [1, 2] == [epoch["epoch"] for epoch in store.epochs(run_id)]
    assert [] == [path.name for path in folder.rglob("*.keras")]  # no partial file left behind
    with pytest.raises(ModelUnavailable, match="has no saved model: the best model could not be saved"):
        load_run_model(store.get_run(run_id))


def test_store_on_a_full_disk_is_one_line_and_keeps_its_runs(small_mount, tiny_npz):
    folder, _ = small_mount
    db = folder / "runs.sqlite"
    store_with_a_dead_run(db)
    rows = stored_rows(db)
    free = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 4096))
    result = run_cli("train", "--preset", "seed-part1", "--epochs", "1", "--data", str(tiny_npz), "--db", str(db),
                     cwd=folder.parent)
    assert_one_error_line(result, "(is its disk full?)")
    (folder / "filler").unlink()
    assert rows == stored_rows(db)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data):
    """A store with one really trained run: (store path, run id, its good .keras bytes, an image)."""
    from images import write_good_images
    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.store import RUNNING, Store
    from lsc_core.train import train_run

    folder = tmp_path_factory.mktemp("hostile_models")
    store = Store(folder / "runs.sqlite")
    layers = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
              LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
    run_id = store.create_run(RunConfig(layers=layers, epochs=1, batch_size=32), status=RUNNING)
    run = train_run(store, run_id, load_data=lambda: tiny_data)
    image = write_good_images(folder / "images")["photo.jpg"]
    return folder / "runs.sqlite", run_id, Path(run.model_path).read_bytes(), image


def stored_rows(db: Path) -> list:
    """Every run and epoch row of a store: what must survive any hostile input."""
    conn = sqlite3.connect(db)
    try:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in ("runs", "epochs")]
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_hostile_model_file_is_one_line_and_loses_nothing(trained_run, monkeypatch, capsys, name):
    from lsc_core.cli import main
    from lsc_core.store import Store

    db, run_id, good, image = trained_run
    writer, expected = MODELS[name]
    store = Store(db)
    bad = store.artifacts / f"{name}.keras"
    writer(good, bad)
    store.set_model_path(run_id, bad)  # as if the file at the run's path had been replaced
    before = (stored_rows(db), hashlib.sha256(image.read_bytes()).hexdigest())
    status = main(["predict", "--run", str(run_id), str(image), "--db", str(db)])
    err = capsys.readouterr().err
    assert 0 != status
    lines = err.strip().splitlines()
    assert 1 == len(lines) and lines[0].startswith(f"error: the model of run {run_id} cannot be loaded"), err
    assert expected in lines[0]
    assert before == (stored_rows(db), hashlib.sha256(image.read_bytes()).hexdigest())


# -- names an attacker chose, on every page that shows them ----------------------------------
HOSTILE_NAMES = ("![](http://127.0.0.1:9/x)", "<img src=x onerror=alert(1)>", "**bold**", "[a](b)")
MARKDOWN_ELEMENTS = ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info", "success")


def rendered_markdown(at) -> list[str]:
    """The Markdown source of every element of an AppTest that renders Markdown, table cells included."""
    bodies = [element.value for kind in MARKDOWN_ELEMENTS for element in getattr(at, kind)]
    for table in at.table:
        bodies += [str(cell) for cell in table.value.to_numpy().ravel()]
    return bodies


def assert_shown_as_text(at, texts) -> None:
    """Each text appears escaped somewhere, and nowhere raw (where it would be Markdown or HTML)."""
    from lsc_core.markup import plain

    bodies = rendered_markdown(at)
    for text in texts:
        assert [] == [body for body in bodies if text in body]
        assert any(plain(text) in body for body in bodies), (text, bodies)


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory, tiny_npz, tiny_data):
    """A store whose runs are named by an attacker: the first trained for real (so Predict
    offers it), the others failed with errors quoting their names. Yields (db, {name: id})."""
    from lsc_core.config import LayerSpec, RunConfig
    from lsc_core.jobs import manager_for
    from lsc_core.store import FAILED, RUNNING, Store
    from lsc_core.train import train_run

    db = tmp_path_factory.mktemp("hostile_app") / "runs.sqlite"
    store = Store(db)
    layers = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
              LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))
    ids = {}
    for number, name in enumerate(HOSTILE_NAMES):
        ids[name] = store.create_run(RunConfig(layers=layers, epochs=1, batch_size=32, name=name), status=RUNNING)
        if number == 0:  # also proves that any name builds a Keras model
            assert "completed" == train_run(store, ids[name], load_data=lambda: tiny_data).status
        else:
            store.finish_run(ids[name], FAILED, f"the run {name} failed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LSC_DB", str(db))
        patch.setenv("LSC_DATA", str(tiny_npz))
        patch.setenv("LSC_ARTIFACTS", str(db.parent / "artifacts"))
        yield db, ids
    manager = manager_for(db, create=False)
    if manager is not None:
        manager.shutdown(timeout=60)


def test_home_shows_a_hostile_run_name_as_text(hostile_app):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert_shown_as_text(at, HOSTILE_NAMES[:1])  # the best coarse run's caption


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_runs_page_shows_hostile_names_and_errors_as_text(hostile_app, name):
    from streamlit.testing.v1 import AppTest

    db, ids = hostile_app
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params["run"] = str(ids[name])
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert_shown_as_text(at, [name] if name == HOSTILE_NAMES[0] else [name, f"the run {name} failed"])


def test_runs_page_shows_a_hostile_address_bar_as_text(hostile_app):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params["run"] = HOSTILE_NAMES[0]
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert_shown_as_text(at, [f"There is no run {HOSTILE_NAMES[0]!r}"])


def test_predict_shows_hostile_file_and_run_names_as_text(hostile_app):
    from streamlit.testing.v1 import AppTest

    from images import write_good_images

    db, ids = hostile_app
    photo = next(iter(write_good_images(db.parent / "images").values())).read_bytes()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("app_pages/predict.py").run()
    names = ["[a](b).png", "<img src=x>.png", "**bold**.png"]
    at.file_uploader[0].set_value([(names[0], photo, "image/png"), (names[1], photo, "image/png"),
                                   (names[2], b"", "image/png")]).run()
    assert not at.exception
    assert_shown_as_text(at, names + [HOSTILE_NAMES[0]])
