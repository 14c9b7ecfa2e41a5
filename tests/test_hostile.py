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
            assert "completed" == train_run(store, ids[name], load_data=lambda: tiny_data)["status"]
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
