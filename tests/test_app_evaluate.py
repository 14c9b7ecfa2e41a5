"""AppTest of the Evaluate page on real tiny runs: metrics, both confusion views, galleries."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lsc_core.config import LayerSpec, RunConfig
from lsc_core.evaluate import store_predictions
from lsc_core.store import RUNNING, Store
from lsc_core.train import train_run

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "app_pages" / "evaluate.py")
TIMEOUT_S = 60  # the first run imports pandas/altair and, for an older run, TensorFlow
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """runs.sqlite with a fine run (predictions stored by the hook) and a coarse run without them."""
    db = tmp_path_factory.mktemp("app_eval") / "runs.sqlite"
    store = Store(db)
    config = RunConfig(layers=SMALL, epochs=1, batch_size=32, learning_rate=3e-3)
    ids = {}
    for mode, hook in (("fine", store_predictions), ("coarse", None)):
        ids[mode] = store.create_run(config.replace(label_mode=mode, name=f"tiny-{mode}"), status=RUNNING)
        train_run(store, ids[mode], load_data=lambda: tiny_data, after_training=hook)
    return db, ids


def heatmap_classes(at) -> int:
    """The class count of the page's one confusion heatmap (its column order), beside the per-class bars."""
    heatmap, _bars = at.get("vega_lite_chart")
    return len(json.loads(heatmap.proto.spec)["layer"][0]["encoding"]["x"]["sort"])


@pytest.fixture
def page(trained, tiny_npz, monkeypatch):
    db, ids = trained
    monkeypatch.setenv("LSC_DB", str(db))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.delenv("LSC_ARTIFACTS", raising=False)  # the models sit beside the store
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT_S), ids


def test_a_fine_run_shows_accuracy_derived_coarse_and_both_confusions(page):
    at, ids = page
    at.session_state["selected_run"] = ids["fine"]
    at.run()
    assert not at.exception
    assert ids["fine"] == at.selectbox[0].value
    assert ["Top-1 test accuracy", "Top-5 test accuracy", "Random guess", "Coarse (from fine)",
            "Errors in superclass"] == [m.label for m in at.metric]
    assert "1%" == at.metric[2].value
    level = at.segmented_control(key="confusion_level")
    assert (["Fine (100 classes)", "Coarse, derived from fine (20 superclasses)"], "Fine (100 classes)") == \
        (level.options, level.value)
    assert any(m.value.startswith("**Best:**") for m in at.markdown)
    assert 100 == heatmap_classes(at)  # one heatmap at a time (a hidden tab squeezed its chart), per-class bars
    level.set_value("Coarse, derived from fine (20 superclasses)").run()
    assert 20 == heatmap_classes(at)
    at.segmented_control[0].set_value("image count").run()
    assert not at.exception
    at.selectbox[1].set_value(3).run()  # gallery of class 3 (bear)
    assert not at.exception


def test_an_older_coarse_run_is_predicted_on_first_open(page):
    at, ids = page
    at.session_state["selected_run"] = ids["coarse"]
    at.run()
    assert not at.exception
    assert ["Top-1 test accuracy", "Top-5 test accuracy", "Random guess"] == [m.label for m in at.metric]
    assert "5%" == at.metric[2].value
    assert 2 == len(at.get("vega_lite_chart"))  # one heatmap, per-class bars
    at.segmented_control[1].set_value("predicted class").run()
    assert not at.exception


def test_an_empty_store_says_what_to_do(tmp_path, tiny_npz, monkeypatch):
    monkeypatch.setenv("LSC_DB", str(tmp_path / "empty.sqlite"))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert ["No run with a saved model yet (completed, or stopped after an epoch). Train one on Build & "
            "Train, or with "
            "`python -m lsc_core train`."] == [i.value for i in at.info]


def test_the_picker_follows_every_choice_and_the_address_names_the_run(page):
    at, ids = page
    at.query_params["run"] = str(ids["coarse"])  # a shared link opens that run
    at.run()
    picker = at.selectbox(key="evaluate_run")
    assert (ids["coarse"], "5%") == (picker.value, at.metric[2].value)  # 1 in 20 classes
    for run_id, guess in ((ids["fine"], "1%"), (ids["coarse"], "5%"), (ids["fine"], "1%")):
        at.selectbox(key="evaluate_run").set_value(run_id).run()
        assert not at.exception
        assert (run_id, guess, str(run_id)) == (at.selectbox(key="evaluate_run").value, at.metric[2].value,
                                                at.query_params["run"])
