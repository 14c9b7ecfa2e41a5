"""The Search and Study pages run in Streamlit's AppTest: launch with tiny limits, no exceptions."""
import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lsc_core import search, study
from lsc_core.markup import plain
from lsc_core.store import Store

TIMEOUT_S = 60
REPO = Path(__file__).resolve().parent.parent
# Stands in for Build & Train: shows what the Search page handed over.
BUILD_STAND_IN = "import streamlit as st\nst.json(st.session_state.get('clone_config'))\n"


def start(tmp_path, page: str) -> AppTest:
    """`page` under st.navigation (as app.py runs it), so st.switch_page resolves; Build is a stand-in."""
    root = tmp_path / "app"
    (root / "app_pages").mkdir(parents=True)
    for name in ("search", "study"):
        (root / "app_pages" / f"{name}.py").symlink_to(REPO / "app_pages" / f"{name}.py")
    (root / "app_pages" / "build.py").write_text(BUILD_STAND_IN)
    pages = ", ".join(f"st.Page('app_pages/{name}.py', default={name == page})" for name in ("search", "study", "build"))
    (root / "app.py").write_text(f"import streamlit as st\nst.navigation([{pages}]).run()\n")
    return AppTest.from_file(str(root / "app.py"), default_timeout=TIMEOUT_S).run()


@pytest.fixture
def env(app_env):
    return app_env


def widget(widgets, label):
    return next(w for w in widgets if w.label == label)


def wait_until(predicate, seconds=120):
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline:
        time.sleep(0.5)
    return predicate()


def test_search_page_launches_a_search_and_opens_its_best_trial(env, tmp_path):
    at = start(tmp_path, "search")
    assert not at.exception
    assert "No search yet" in at.info[0].value
    widget(at.number_input, "Trials").set_value(2)
    widget(at.number_input, "Epochs per trial").set_value(1)
    widget(at.number_input, "Training images (0 = all 50,000)").set_value(64)
    widget(at.multiselect, "layer 9: dense 128 relu").set_value([32, 64])  # small and quick
    widget(at.text_input, "Search name").set_value("dense width, quick")
    at.button[0].click().run()
    assert not at.exception
    assert ["Search 1 queued: 2 runs x 1 epoch x 64 images = 128 training images; no time estimate yet: no run of "
            "a size like 2 of these networks has been measured on this device."] == [s.value for s in at.success]

    store = Store(env)
    assert "dense width, quick" == store.get_search(1)["name"]
    assert wait_until(lambda: store.get_search(1)["status"] == search.SEARCH_COMPLETED)
    assert [("completed", None)] * 2 == [(run.status, run.error) for run in store.list_runs(search_id=1)]
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert 2 == len(table) and ["completed", "completed"] == list(table["status"])
    # Each searched setting against accuracy, then all of them as parallel coordinates.
    assert 2 == len(at.get("vega_lite_chart"))
    best = search.best_trial(store, 1)
    assert any(plain(best.name) in m.value for m in at.markdown)
    open_button = next(b for b in at.button if b.label.startswith("Open the best configuration"))
    open_button.click().run()
    from app_pages.common import CLONE_CONFIG

    assert not at.exception
    assert search.trial_config_dict(best) == at.session_state[CLONE_CONFIG]
    assert search.trial_config_dict(best) == json.loads(at.json[0].value)  # Build (stand-in) received it


def test_a_search_repeating_a_running_one_asks_first(env, tmp_path):
    at = start(tmp_path, "search")
    widget(at.number_input, "Training images (0 = all 50,000)").set_value(64)
    widget(at.number_input, "Trials").set_value(1)
    at.button[0].click().run()
    assert ["Search 1 queued"] == [s.value.split(":")[0] for s in at.success]
    store = Store(env)
    # Unnamed: named after what it is, not "random search" like every other.
    assert "random, seed-part2 coarse: conv1_filters, conv2_filters, conv3_filters +2 more" == \
        store.get_search(1)["name"]
    store.request_stop(store.list_runs(search_id=1)[0].id)  # nothing needs to train here
    at.button[0].click().run()  # the same form again, while search 1 still counts as running
    assert not at.exception and [] == at.success
    (warning,) = at.warning
    assert "search 1 with exactly these settings is still running" in warning.value
    assert [1] == [s["id"] for s in store.list_searches()]  # nothing queued yet
    next(b for b in at.button if b.label == "Queue it anyway").click().run()
    assert ["Search 2 queued."] == [s.value for s in at.success]
    assert [2, 1] == [s["id"] for s in store.list_searches()]


def test_search_page_refuses_an_empty_layer_choice_where_it_was_typed(env, tmp_path):
    at = start(tmp_path, "search")
    widget(at.multiselect, "layer 1: conv2d 32 3x3 relu").set_value([])
    at.button[0].click().run()
    assert not at.exception
    assert [plain("layer 1: conv2d 32 3x3 relu: choose at least one value")] == [e.value for e in at.error]
    assert [] == Store(env).list_searches()


def test_opening_the_page_leaves_a_search_another_process_is_training_to_it(env, tmp_path):
    """A command-line search mid-trial: the dashboard shows it and queues none of its trials."""
    import subprocess

    from lsc_core.config import LayerSpec, RunConfig

    store = Store(env)
    base = RunConfig(layers=(LayerSpec.make("flatten"), LayerSpec.make("dense", units=32)))
    space = search.SearchSpace(base, (search.Param("dense_units", layer=2, choices=(16, 32)),))
    search_id = search.create_search(store, search.SearchSpec(space, trials=2, epochs=1, limit=64))
    config = search.plan_trials(search.get_spec(store, search_id), search_id)[0]
    other = subprocess.Popen(["sleep", "60"])  # the command line training trial 1
    try:
        trial = store.create_run(config, status="running", search_id=search_id)
        store.db.execute("UPDATE runs SET pid = ? WHERE id = ?", [other.pid, trial])
        at = start(tmp_path, "search")
        assert not at.exception and not at.error
        assert [(trial, "running")] == [(run.id, run.status) for run in store.list_runs()]
        assert 1 == len(at.dataframe[0].value)
    finally:
        other.kill()
        other.wait()
    # The page itself resumes nothing: the job manager does that once when it starts.
    assert "resume_searches" not in (REPO / "app_pages" / "search.py").read_text()


def test_study_page_queues_the_suite_and_fills_in(env, tmp_path):
    at = start(tmp_path, "study")
    assert not at.exception
    widget(at.number_input, "Epochs scale").set_value(0.01)
    widget(at.number_input, "Training images per run (0 = all 50,000)").set_value(64)
    at.button[0].click().run()
    assert not at.exception
    assert 1 == len(at.success)
    table = at.dataframe[0].value
    assert [row["experiment"] for row in study.study_table(Store(env), None)] == list(table["experiment"])
    assert [f.accuracy for f in study.STUDY_FIGURES] == [None if v != v else v for v in table["study accuracy"]]

    store = Store(env)
    suite = study.latest_suite(store)
    first = suite["runs"]["p1-adam-b32"]
    assert wait_until(lambda: store.get_run(first).status == "completed"), {k: getattr(store.get_run(first), k) for k in ("status", "error", "progress", "started_at")}
    at.run()
    assert not at.exception and not at.error
    assert store.get_run(first).best_val_accuracy == pytest.approx(at.dataframe[0].value["our accuracy"][0])
    # Asking again does not queue the study twice.
    at.button[0].click().run()
    assert 20 == len(store.list_runs())


def test_study_page_stops_and_removes_its_suite(env, tmp_path):
    store = Store(env)
    study.queue_suite(store, epochs_scale=0.01, limit=64)  # queued here: the page's worker may start its first run
    at = start(tmp_path, "study")
    suite = study.latest_suite(store)
    next(b for b in at.button if b.label == "Stop the suite").click().run()
    assert not at.exception
    assert [f"Suite {suite['id']} stopped"] == [i.value.split(":")[0] for i in at.info]
    # A run the worker had started ends after its batch (stopped, or completed if it was its last).
    assert wait_until(lambda: set(study.progress(store, suite)) <= {"stopped", "completed"})
    at.run()
    assert next(b for b in at.button if b.label == "Stop the suite").disabled  # nothing left to stop
    next(b for b in at.button if b.label == f"Remove suite {suite['id']}").click().run()
    assert not at.exception
    assert [] == study.suites(store) and 20 == len(store.list_runs())  # the runs stay
    assert any("No study suite yet" in i.value for i in at.info)
