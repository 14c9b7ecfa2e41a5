"""Where a model is used (Runs, Evaluate, Predict, the command line): which epoch it is, and a
model path outside the store's artifacts folder refused in one line. Real tiny runs, the real
pages through AppTest."""
import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app_runs import start

from images import write_good_images
from lsc_core.artifacts import describe_model
from lsc_core.cli import main
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.evaluate import store_predictions
from lsc_core.markup import plain
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60  # Predict loads the model (TensorFlow) as the page opens
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A store with one really trained run (3 epochs, predictions stored): (store, run)."""
    store = Store(tmp_path_factory.mktemp("app_artifacts") / "runs.sqlite")
    run_id = store.create_run(RunConfig(layers=SMALL, epochs=3, batch_size=32, learning_rate=3e-3, name="tiny"),
                              status=RUNNING)
    return store, train_run(store, run_id, load_data=lambda: tiny_data, after_training=store_predictions)


@pytest.fixture
def env(trained, tiny_npz, monkeypatch):
    store, run = trained
    monkeypatch.setenv("LSC_DB", str(store.path))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)  # the store's folder is beside it
    yield store, run
    from lsc_core.jobs import manager_for

    manager = manager_for(store.path.resolve(), create=False)
    if manager is not None:
        manager.shutdown(timeout=60)


@pytest.fixture(params=["/etc/shadow", "../../x", "a link leading out"])
def hostile(request, env, tmp_path):
    """The run's model path replaced in the store by one leading outside its folder (restored after)."""
    store, run = env
    value = request.param
    if value == "a link leading out":
        outside = tmp_path / "elsewhere.keras"
        outside.write_bytes(run.model_path.read_bytes())
        link = store.artifacts / "7" / "best.keras"
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(outside)
        value = "7/best.keras"
    good = store.db.execute("SELECT model_path FROM runs WHERE id = ?", [run.id]).fetchone()[0]
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE runs SET model_path = ? WHERE id = ?", [value, run.id])
    yield store, store.get_run(run.id)
    with conn:
        conn.execute("UPDATE runs SET model_path = ? WHERE id = ?", [good, run.id])
    conn.close()


def test_the_saved_models_epoch_is_the_best_and_shown_under_its_download(env, tmp_path):
    store, run = env
    assert (run.best_epoch, f"best model: epoch {run.best_epoch} of 3, test acc {run.best_val_accuracy:.3f}") == \
        (run.model_epoch, describe_model(run))
    at = start(tmp_path, "runs", selected_run=run.id)
    assert not at.exception
    assert ["download_csv", "download_model"] == [d.key for d in at.get("download_button")]
    assert plain(describe_model(run)) in [c.value for c in at.caption]


def test_evaluate_and_predict_name_the_models_epoch(env):
    store, run = env
    line = plain(describe_model(run))
    evaluate = AppTest.from_file(str(REPO / "app_pages" / "evaluate.py"), default_timeout=TIMEOUT_S)
    evaluate.session_state["selected_run"] = run.id
    evaluate.run()
    assert not evaluate.exception
    assert any(c.value.endswith(f"test images; {line}.") for c in evaluate.caption)
    predict = AppTest.from_file(str(REPO / "app_pages" / "predict.py"), default_timeout=TIMEOUT_S)
    predict.run()
    assert not predict.exception
    assert [run.id] == predict.multiselect[0].value
    assert any(c.value.endswith(f": {line}") for c in predict.caption)


def test_a_model_path_outside_the_folder_has_no_download_and_says_why(hostile, tmp_path):
    store, run = hostile
    assert run.model_path is None and "this store's artifacts folder" in run.model_problem
    at = start(tmp_path, "runs", selected_run=run.id)
    assert not at.exception
    assert ["download_csv"] == [d.key for d in at.get("download_button")]  # no model button, no export
    assert [plain(run.model_problem)] == [w.value for w in at.warning]


def test_evaluate_and_predict_say_why_the_model_is_not_used(hostile):
    store, run = hostile
    evaluate = AppTest.from_file(str(REPO / "app_pages" / "evaluate.py"), default_timeout=TIMEOUT_S)
    evaluate.session_state["selected_run"] = run.id
    evaluate.run()
    assert not evaluate.exception
    assert plain(run.model_problem) in [w.value for w in evaluate.warning]  # its stored predictions still shown
    predict = AppTest.from_file(str(REPO / "app_pages" / "predict.py"), default_timeout=TIMEOUT_S)
    predict.session_state["predict_runs"] = [run.id]
    predict.run()
    assert not predict.exception
    assert [plain(f"run {run.id} (tiny, completed) has no saved model: {run.model_problem}")] == \
        [e.value for e in predict.error]


def test_cli_predict_names_the_models_epoch(env, tmp_path, capsys):
    store, run = env
    image = write_good_images(tmp_path / "images")["photo.jpg"]
    assert 0 == main(["predict", "--run", str(run.id), str(image), "--db", str(store.path)])
    out = capsys.readouterr().out
    assert f"run {run.id} (tiny): {describe_model(run)}" == out.splitlines()[0]


def test_cli_predict_refuses_a_model_path_outside_in_one_line(hostile, tmp_path, capsys):
    store, run = hostile
    image = write_good_images(tmp_path / "images")["photo.jpg"]
    assert 1 == main(["predict", "--run", str(run.id), str(image), "--db", str(store.path)])
    out, err = capsys.readouterr()
    assert ("", [f"error: run {run.id} (tiny, completed) has no saved model: {run.model_problem}"]) == \
        (out, err.splitlines())


def test_cli_runs_lists_the_models_epoch_and_a_refused_path(hostile, capsys):
    store, run = hostile
    assert 0 == main(["runs", "--db", str(store.path)])
    header, row, *notes = capsys.readouterr().out.splitlines()
    assert "@epoch model" in header
    assert row.split()[6:8] == [str(run.best_epoch), "!"]
    assert [f"run {run.id}: {run.model_problem}"] == notes
