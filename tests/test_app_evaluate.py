"""AppTest of the Evaluate page on real tiny runs: metrics, both confusion views, other runs, galleries."""
import json
import os
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
    """runs.sqlite with a fine run (predictions stored by the hook), a coarse run without them, and a
    second fine run (another seed) to compare with and average."""
    db = tmp_path_factory.mktemp("app_eval") / "runs.sqlite"
    store = Store(db)
    config = RunConfig(layers=SMALL, epochs=4, batch_size=32, learning_rate=3e-3)
    ids = {}
    for key, mode, hook in (("fine", "fine", store_predictions), ("coarse", "coarse", None),
                            ("fine_b", "fine", store_predictions)):
        ids[key] = store.create_run(config.replace(label_mode=mode, name=f"tiny-{key}", seed=len(ids)),
                                    status=RUNNING)
        train_run(store, ids[key], load_data=lambda: tiny_data, after_training=hook)
    return db, ids


def heatmap_classes(at) -> int:
    """The class count of the page's confusion heatmap (its first chart; per-class bars and the charts
    against another run follow)."""
    heatmap = at.get("vega_lite_chart")[0]
    return len(json.loads(heatmap.proto.spec)["layer"][0]["encoding"]["x"]["sort"])


def open_section(at, name: str):
    """Open one of the page's tabs, as a click on it does."""
    at.session_state["section"] = name
    return at.run()


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
            "Errors in superclass"] == [m.label for m in at.metric][:5]
    assert "1%" == at.metric[2].value
    level = at.segmented_control(key="confusion_level")
    assert (["Fine (100 classes)", "Coarse, derived from fine (20 superclasses)"], "Fine (100 classes)") == \
        (level.options, level.value)
    assert any(m.value.startswith("**Best:**") for m in at.markdown)
    assert 100 == heatmap_classes(at)  # one heatmap at a time (a hidden tab squeezed its chart), per-class bars
    level.set_value("Coarse, derived from fine (20 superclasses)").run()
    assert 20 == heatmap_classes(at)
    at.segmented_control(key="confusion_scale").set_value("image count").run()
    assert not at.exception
    open_section(at, "Mistakes")
    assert "image count" == at.segmented_control(key="confusion_scale").value  # one setting for the page
    at.selectbox(key="evaluate_class").set_value(3).run()  # gallery of class 3 (bear)
    assert not at.exception


def test_choices_inside_a_tab_survive_a_visit_to_another_tab(page):
    """Only the open tab's widgets are drawn; the others keep what the person chose."""
    at, ids = page
    at.session_state["selected_run"] = ids["fine"]
    at.run()
    at.segmented_control(key="confusion_level").set_value("Coarse, derived from fine (20 superclasses)").run()
    open_section(at, "Mistakes")
    at.selectbox(key="evaluate_class").set_value(3).run()
    at.segmented_control(key="evaluate_role").set_value("predicted class").run()
    open_section(at, "Confusion")
    assert 20 == heatmap_classes(at)  # still the coarse matrix
    open_section(at, "Mistakes")
    assert (3, "predicted class") == (at.selectbox(key="evaluate_class").value,
                                      at.segmented_control(key="evaluate_role").value)
    assert not at.exception


def test_a_link_naming_a_section_opens_it(page):
    at, ids = page
    at.query_params["run"], at.query_params["section"] = str(ids["fine"]), "Mistakes"  # a shared link
    at.run()
    assert not at.exception
    assert "Most confused pairs" in [h.value for h in at.subheader] and at.get("image")


def test_an_older_coarse_run_is_predicted_on_first_open(page):
    at, ids = page
    at.session_state["selected_run"] = ids["coarse"]
    at.run()
    assert not at.exception
    assert ["Top-1 test accuracy", "Top-5 test accuracy", "Random guess"] == [m.label for m in at.metric][:3]
    assert "5%" == at.metric[2].value
    assert ["Confusion", "Against other runs", "Mistakes"] == [tab.label for tab in at.tabs]
    # The first view runs the open section only: one heatmap and the per-class bars, no images.
    assert (2, 0) == (len(at.get("vega_lite_chart")), len(at.get("image")))
    open_section(at, "Against other runs")  # against a fine run (at coarse level): differences, reliability
    assert (2, 0) == (len(at.get("vega_lite_chart")), len(at.get("image")))
    assert not at.exception
    open_section(at, "Mistakes")
    assert at.get("image") and not at.get("vega_lite_chart")  # a coarse run has no superclass drill-down
    at.segmented_control(key="evaluate_role").set_value("predicted class").run()
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


def _percent(metric) -> float:
    return float(metric.value.rstrip("%")) / 100


def test_two_runs_give_per_class_differences_with_mcnemar_an_ensemble_and_calibration(page):
    at, ids = page
    at.session_state["selected_run"] = ids["fine"]
    open_section(at, "Against other runs")
    at.selectbox(key="evaluate_other").set_value(ids["fine_b"]).run()
    assert not at.exception
    assert ["fine", "coarse"] == at.radio(key="evaluate_compare_level").options
    metrics = {m.label: m for m in at.metric}
    assert {f"A: #{ids['fine']}", f"B: #{ids['fine_b']}", "McNemar p-value", "Ensemble top-1", "Ensemble top-5",
            "Best run alone", "Weakest run alone"} <= set(metrics)
    assert 0 <= float(metrics["McNemar p-value"].value) <= 1
    assert any("McNemar p = " in m.value for m in at.markdown)
    assert [ids["fine"], ids["fine_b"]] == at.multiselect(key=f"evaluate_ensemble_{ids['fine']}").value
    assert _percent(metrics["Ensemble top-1"]) >= _percent(metrics["Weakest run alone"])
    at.radio(key="evaluate_compare_level").set_value("coarse").run()
    assert not at.exception
    at.multiselect(key=f"evaluate_ensemble_{ids['fine']}").set_value([ids["fine"]]).run()
    assert not at.exception
    assert any("Pick two or more fine runs" in c.value for c in at.caption)


def test_galleries_show_what_the_network_looked_at(page):
    at, ids = page
    at.session_state["selected_run"] = ids["fine"]
    open_section(at, "Mistakes")
    plain = [len(element.captions) for element in at.get("image")]
    at.toggle(key="evaluate_gradcam").set_value(True).run()
    assert not at.exception
    captions = [caption for element in at.get("image") for caption in element.captions]
    assert any(c.startswith("looked at for ") and c.endswith("(true)") for c in captions)
    assert any(c.endswith("(predicted)") for c in captions)
    # The same galleries, each image now beside its two heatmaps.
    assert [3 * n for n in plain] == [len(element.captions) for element in at.get("image")]


def test_a_fine_run_drills_into_one_superclass(page):
    at, ids = page
    at.session_state["selected_run"] = ids["fine"]
    open_section(at, "Mistakes")
    at.selectbox(key="evaluate_superclass").set_value(1).run()  # fish
    assert not at.exception
    sorts = [json.loads(chart.proto.spec).get("layer", [{}])[0].get("encoding", {}).get("x", {}).get("sort")
             for chart in at.get("vega_lite_chart")]
    assert ["aquarium_fish", "flatfish", "ray", "shark", "trout"] in sorts
    assert any("went to other superclasses" in c.value for c in at.caption)


def test_flip_averaging_is_measured_on_request_and_shown_beside_the_plain_figure(page):
    at, ids = page
    at.session_state["selected_run"] = ids["coarse"]
    at.run()
    assert "Top-1 with flip averaging (TTA)" not in [m.label for m in at.metric]
    at.button(key="measure_tta").click().run()
    assert not at.exception
    tta = Store(os.environ["LSC_DB"]).get_run(ids["coarse"]).tta_accuracy
    assert 0 <= tta <= 1
    shown = {m.label: m.value for m in at.metric}
    assert f"{tta:.1%}" == shown["Top-1 with flip averaging (TTA)"]
    assert "Top-1 test accuracy" in shown  # the plain figure stays
