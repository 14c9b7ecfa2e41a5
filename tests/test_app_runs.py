"""AppTest of the Home and Runs pages against a real store: a really trained run and a running one."""
import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lsc_core.config import LayerSpec, RunConfig, preset
from lsc_core.markup import plain
from lsc_core.store import COMPLETED, QUEUED, RUNNING, STOPPED, Store
from lsc_core.train import train_run

REPO = Path(__file__).resolve().parent.parent
# Pages Home links to. Both pages must be run under st.navigation for st.page_link and
# st.switch_page to resolve, so the tests run them through a navigation entry point.
LINKED_PAGES = ("home", "build", "runs", "data_explorer", "evaluate", "predict", "search", "study")
SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


# Stands in for Build & Train in the Clone test: shows what the Runs page handed over.
CLONE_RECEIVER = "import streamlit as st\nst.json(st.session_state.get('clone_config'))\n"


def navigation_entry(root: Path, stand_ins: dict | None = None) -> Path:
    """app.py's navigation over the repo's pages, linked into `root`.

    Links (not copies) keep the pages' real paths, which is what page links resolve
    to. A page another part of the project has not added yet is replaced by a page
    that says so, and `stand_ins` (name -> source) replace others, so these tests
    exercise Home and Runs alone.
    """
    stand_ins = stand_ins or {}
    (root / "app_pages").mkdir(parents=True)
    for name in LINKED_PAGES:
        target, link = REPO / "app_pages" / f"{name}.py", root / "app_pages" / f"{name}.py"
        if name in stand_ins:
            link.write_text(stand_ins[name])
        elif target.exists():
            link.symlink_to(target)
        else:
            link.write_text(f"import streamlit as st\nst.write('{name} is not in this checkout')\n")
    pages = ", ".join(f"st.Page('app_pages/{name}.py', default={name == 'home'})" for name in LINKED_PAGES)
    entry = root / "app.py"
    entry.write_text(f"import streamlit as st\nst.navigation([{pages}]).run()\n")
    return entry


@pytest.fixture
def app_store(tmp_path, monkeypatch, tiny_npz, tiny_data):
    """$LSC_DB with one completed run trained for real and one running run one epoch in."""
    db = tmp_path / "runs.sqlite"
    monkeypatch.setenv("LSC_DB", str(db))
    monkeypatch.setenv("LSC_DATA", str(tiny_npz))
    monkeypatch.setenv("LSC_ARTIFACTS", str(tmp_path / "artifacts"))
    store = Store(db)
    trained = store.create_run(RunConfig(layers=SMALL, epochs=2, batch_size=32, learning_rate=3e-3, name="small"),
                               status=RUNNING)
    train_run(store, trained, load_data=lambda: tiny_data)
    # Owned by this (living) process, so the page's store does not take it for a dead run.
    live = store.create_run(preset("seed-part2", epochs=4, label_mode="fine"), status=RUNNING)
    store.log_epoch(live, 1, {"loss": 4.0, "accuracy": 0.05, "val_loss": 4.2, "val_accuracy": 0.04}, 8.0)
    store.heartbeat(live, {"phase": "training", "epoch": 2, "epochs": 4, "batch": 30, "batches": 60,
                           "epoch_started": time.time() - 2.0})
    return store, trained, live


def start(tmp_path, page: str, stand_ins: dict | None = None, **session) -> AppTest:
    at = AppTest.from_file(str(navigation_entry(tmp_path / "app", stand_ins)), default_timeout=30)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    if page != "home":
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def open_tab(at, name: str) -> AppTest:
    """Open one of the Runs page's tabs, as a click on it does (only the open one runs)."""
    at.session_state["tab"] = name
    return at.run()


def test_home_shows_the_running_run_and_the_best_results(tmp_path, app_store):
    store, trained, live = app_store
    at = start(tmp_path, "home")
    assert not at.exception
    run = store.get_run(trained)
    assert [("Best coarse test accuracy", f"{run.best_val_accuracy:.3f}",
             f"{run.best_val_accuracy - 0.552:+.3f} vs study 0.552"),
            ("Best fine test accuracy", "none yet", "")] == [(m.label, m.value, m.delta) for m in at.metric]
    (bar,) = at.get("progress")
    assert bar.proto.text.startswith("training, epoch 2/4, batch 30/60, about ")
    assert pytest.approx((1 + 30 / 60) / 4, abs=0.01) == bar.proto.value / 100
    links = [link.proto.label for link in at.get("page_link")]
    assert sorted(["Build & Train", "Runs", "Data", "Evaluate", "Predict", "Search", "Study"]) == sorted(links)


def test_home_stop_button_asks_the_run_to_stop(tmp_path, app_store):
    store, _, live = app_store
    at = start(tmp_path, "home")
    at.button(key=f"stop-{live}").click().run()
    assert not at.exception
    assert 1 == store.get_run(live).stop_requested
    assert (True, "Stopping…") == (at.button(key=f"stop-{live}").disabled, at.button(key=f"stop-{live}").label)


def test_runs_table_matches_the_store(tmp_path, app_store):
    store, trained, live = app_store
    at = start(tmp_path, "runs")
    assert not at.exception
    table = at.dataframe[0].value
    expected = [(run.id, run.name, run.status, run.label_mode, run.best_epoch)
                for run in store.list_runs()]
    assert expected == list(zip(table["id"], table["name"], table["status"], table["label_mode"],
                                [None if v is None or v != v else int(v) for v in table["best_epoch"]]))
    assert [store.get_run(trained).best_val_accuracy] == list(table[table["id"] == trained]["best_accuracy"])


def test_runs_page_opens_the_newest_run_with_stop_and_progress(tmp_path, app_store):
    store, _, live = app_store
    at = start(tmp_path, "runs")
    assert str(live) == at.query_params["run"]
    assert [plain(store.get_run(live).name)] == [h.value for h in at.subheader]
    (bar,) = at.get("progress")
    assert bar.proto.text.startswith("training, epoch 2/4, batch 30/60, about ")
    at.button(key="stop_run").click().run()
    assert not at.exception
    assert 1 == store.get_run(live).stop_requested
    assert (True, "Stopping…") == (at.button(key="stop_run").disabled, at.button(key="stop_run").label)


def test_runs_page_opens_the_selected_run_with_curves_and_downloads(tmp_path, app_store):
    store, trained, _ = app_store
    at = start(tmp_path, "runs", selected_run=trained)
    assert not at.exception
    run = store.get_run(trained)
    assert [plain(run.name)] == [h.value for h in at.subheader]
    assert "stop_run" not in [b.key for b in at.button]  # a completed run cannot be stopped
    assert ["download_csv", "download_model"] == [d.key for d in at.get("download_button")]
    # The run's curves, its learning rate under them, its CPU and memory use while training; the
    # Compare tab is closed, so it draws nothing (and does not refresh).
    assert ["Runs", "Compare"] == [tab.label for tab in at.tabs]
    assert 3 == len(at.get("vega_lite_chart")) and "compare_runs" not in [m.key for m in at.multiselect]
    assert "Learning rate" in str(at.get("vega_lite_chart")[1].proto.spec)
    speeds = next(frame.value for frame in at.dataframe if "training images/s" in frame.value.columns)
    assert [1, 2] == list(speeds["epoch"]) and (speeds["training images/s"] > 0).all()
    assert [e["seconds"] for e in store.epochs(trained)] == pytest.approx(list(speeds["epoch seconds"]), abs=0.05)


def test_runs_page_status_line_follows_the_store(tmp_path, app_store):
    store, _, live = app_store
    at = start(tmp_path, "runs")
    assert [f"run {live} · running · fine labels · best test accuracy 4.00% at epoch 1"] == \
        [c.value for c in at.caption if c.value.startswith(f"run {live} ")]
    # The run ends: the live view (the same fragment) says so, and offers no Stop any more.
    store.log_epoch(live, 2, {"loss": 3.0, "accuracy": 0.1, "val_loss": 3.1, "val_accuracy": 0.09}, 8.0)
    store.finish_run(live, COMPLETED)
    at.run()
    assert not at.exception
    assert [f"run {live} · completed · fine labels · best test accuracy 9.00% at epoch 2"] == \
        [c.value for c in at.caption if c.value.startswith(f"run {live} ")]
    assert ([], []) == ([b.key for b in at.button if b.key == "stop_run"], at.get("progress"))


def test_compare_defaults_to_the_newest_runs_with_epochs_running_ones_included(tmp_path, app_store):
    store, trained, live = app_store
    store.create_run(preset("seed-part1", epochs=2), status=RUNNING)  # no epoch yet: nothing to compare
    at = start(tmp_path, "runs")
    # The page opens the newest run, which has no curves yet.
    assert ["No epoch has finished yet; the curves appear after the first one."] == [i.value for i in at.info]
    open_tab(at, "Compare")
    assert not at.exception
    assert [live, trained] == at.multiselect(key="compare_runs").value
    assert 1 == len(at.get("vega_lite_chart"))  # the comparison alone: the Runs tab is closed


def test_compare_with_nothing_picked_says_so_and_keeps_the_page(tmp_path, app_store):
    store, trained, _ = app_store
    at = start(tmp_path, "runs", selected_run=trained)
    open_tab(at, "Compare")
    at.multiselect(key="compare_runs").set_value([]).run()
    assert not at.exception
    assert ["Pick at least one run and one of test/train to compare."] == [i.value for i in at.info]
    assert 0 == len(at.get("vega_lite_chart"))
    # Back on Runs: the open run with its curves, learning rate, system metrics and downloads.
    open_tab(at, "Runs")
    assert 3 == len(at.get("vega_lite_chart"))
    assert ["download_csv", "download_model"] == [d.key for d in at.get("download_button")]


def test_each_tab_keeps_its_choices_while_the_other_is_open(tmp_path, app_store):
    store, trained, live = app_store
    at = start(tmp_path, "runs", selected_run=trained)
    at.multiselect(key="runs_label_modes").set_value(["coarse"]).run()
    at.text_area(key=f"note-text-{trained}").input("a draft, not saved yet").run()
    open_tab(at, "Compare")
    at.multiselect(key="compare_runs").set_value([trained]).run()
    at.slider(key="smoothing").set_value(0.5).run()
    open_tab(at, "Runs")
    assert (["coarse"], [trained]) == (at.multiselect(key="runs_label_modes").value, list(at.dataframe[0].value["id"]))
    assert ("a draft, not saved yet", None) == (at.text_area(key=f"note-text-{trained}").value,
                                                store.get_run(trained).note)
    open_tab(at, "Compare")
    assert ([trained], 0.5) == (at.multiselect(key="compare_runs").value, at.slider(key="smoothing").value)
    assert not at.exception


def test_runs_page_clone_hands_the_config_to_build(tmp_path, app_store):
    store, trained, _ = app_store
    at = start(tmp_path, "runs", stand_ins={"build": CLONE_RECEIVER}, selected_run=trained)
    at.button(key="clone_run").click().run()
    assert not at.exception
    (handed_over,) = at.json
    assert store.get_run(trained).config.to_dict() == json.loads(handed_over.proto.body)


def test_unknown_run_in_the_address_falls_back_with_a_message(tmp_path, app_store):
    store, _, live = app_store
    at = AppTest.from_file(str(navigation_entry(tmp_path / "app")), default_timeout=30)
    at.run()
    at.query_params["run"] = "nope"
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert [plain("There is no run 'nope'; showing the newest run instead.")] == [w.value for w in at.warning]


def test_runs_page_exports_the_model_checked_before_download(tmp_path, app_store):
    store, trained, _ = app_store
    at = start(tmp_path, "runs", selected_run=trained)
    at.selectbox(key="export_format").set_value("onnx").run()
    at.button(key="export_model").click().run()
    assert not at.exception
    assert "download_export" in [d.key for d in at.get("download_button")]
    assert [c.value for c in at.caption if c.value.startswith("onnx: top-1 identical on 100% of 100 test images")]


def test_runs_page_tags_notes_archive_and_delete(tmp_path, app_store):
    store, trained, live = app_store
    at = start(tmp_path, "runs", selected_run=trained)
    at.multiselect(key=f"tags-{trained}").set_value(["baseline", "keep"]).run()
    assert ["baseline", "keep"] == store.get_run(trained).tags
    at.text_area(key=f"note-text-{trained}").input("**bold** ![](http://127.0.0.1:9/x)")
    next(b for b in at.button if b.label == "Save note").click().run()
    assert "**bold** ![](http://127.0.0.1:9/x)" == store.get_run(trained).note
    assert ["**bold** ![](http://127.0.0.1:9/x)"] == [t.value for t in at.text]  # shown as text, not Markdown
    # Filter by tag: only the tagged run is listed.
    at.multiselect(key="runs_tags").set_value(["baseline"]).run()
    assert [trained] == list(at.dataframe[0].value["id"])
    at.multiselect(key="runs_tags").set_value([]).run()
    # Archive: hidden from the table, found again under 'Archived'.
    at.button(key=f"archive-{trained}").click().run()
    assert store.get_run(trained).archived
    assert trained not in list(at.dataframe[0].value["id"])
    at.toggle(key="runs_archived").set_value(True).run()
    assert [trained] == list(at.dataframe[0].value["id"])
    # The finished run can be deleted, after a confirmation.
    at.button(key=f"delete-{trained}").click().run()
    assert store.get_run(trained) is not None  # not before "Yes"
    at.button(key="delete-confirmed").click().run()
    assert not at.exception
    assert store.get_run(trained) is None and not (store.artifacts / str(trained)).exists()


def test_compare_shows_only_the_settings_that_differ(tmp_path, app_store):
    store, trained, live = app_store
    at = start(tmp_path, "runs")
    open_tab(at, "Compare")
    at.multiselect(key="compare_runs").set_value([trained, live]).run()
    assert not at.exception
    settings = at.dataframe[-1].value
    assert "setting" in settings.columns and "label_mode" in list(settings["setting"])
    assert "seed" not in list(settings["setting"])  # the same in both: left out
    at.toggle(key="only_differences").set_value(False).run()
    assert "seed" in list(at.dataframe[-1].value["setting"])


def test_a_running_run_offers_no_delete_until_stopped(tmp_path, app_store):
    store, _, live = app_store
    at = start(tmp_path, "runs", selected_run=live)
    assert at.button(key=f"delete-{live}").disabled


@pytest.mark.parametrize("page", ["home", "runs"])
def test_a_run_whose_trainer_died_turns_interrupted_while_the_page_is_open(tmp_path, app_store, page):
    from owners import dead_identity, hand_over

    from lsc_core.liveness import FRESH_HEARTBEAT_S
    from lsc_core.store import INTERRUPTED

    store, _, live = app_store
    at = start(tmp_path, page)
    stop = f"stop-{live}" if page == "home" else "stop_run"
    at.button(key=stop).click().run()
    assert "Stopping…" == at.button(key=stop).label
    # Its command-line trainer is killed: no more heartbeats, its process gone. The open page's
    # live refresh (a rerun here) finds it out, with no new store opened and no server restart.
    hand_over(store, live, dead_identity(), heartbeat_age_s=FRESH_HEARTBEAT_S + 1)
    at.run()
    assert not at.exception
    assert INTERRUPTED == store.get_run(live).status
    assert [] == [b for b in at.button if b.key == stop]  # no "Stopping…" left on screen
    assert [] == at.get("progress")


def test_runs_page_resumes_a_stopped_run_and_extends_a_completed_one(tmp_path, app_store, tiny_data):
    import threading

    from lsc_core.jobs import manager_for
    from stopping import StopsAfterEpoch

    store, trained, _ = app_store
    stop = threading.Event()
    stopping = StopsAfterEpoch(store.path, 1, stop)
    stopped = stopping.create_run(RunConfig(layers=SMALL, epochs=3, batch_size=32, name="cut"), status=RUNNING)
    train_run(stopping, stopped, load_data=lambda: tiny_data, stop_event=stop)
    try:
        at = start(tmp_path, "runs", selected_run=trained)
        assert ("resume-%d" % trained) not in [b.key for b in at.button]
        at.number_input(key=f"more-epochs-{trained}").set_value(2).run()
        assert "Train 2 more epochs" == at.button(key=f"extend-{trained}").label
        at.button(key=f"extend-{trained}").click().run()
        assert not at.exception
        run = store.get_run(trained)
        assert (4, 4) == (run.config.epochs, run.epochs_planned) and run.status != COMPLETED

        at = start(tmp_path / "again", "runs", selected_run=stopped)
        assert f"extend-{stopped}" not in [b.key for b in at.button]
        store.checkpoint_path(stopped).rename(tmp_path / "away.npz")  # gone between drawing and the click
        at.button(key=f"resume-{stopped}").click().run()
        assert [plain(f"run {stopped} has no checkpoint to continue from (it was trained before runs kept one); "
                      "clone it to train it again from scratch")] == [e.value for e in at.error]
        assert STOPPED == store.get_run(stopped).status
        assert f"resume-{stopped}" not in [b.key for b in at.button]  # no checkpoint now: nothing to resume
        (tmp_path / "away.npz").rename(store.checkpoint_path(stopped))
        at.run()
        at.button(key=f"resume-{stopped}").click().run()
        assert (False, []) == (bool(at.exception), at.error)
        assert store.get_run(stopped).status in (QUEUED, RUNNING, COMPLETED)  # the page's worker takes it up
        assert 1 == store.epochs(stopped)[0]["epoch"]  # its epoch kept
    finally:
        manager = manager_for(store.path, create=False)
        if manager is not None:
            manager.shutdown(timeout=120)
