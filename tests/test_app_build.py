"""AppTest of the Build & Train page: presets, live summary, inline errors, launch, clone, transfer."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lsc_core import editor
from lsc_core.config import BackboneSpec, preset
from lsc_core.markup import plain
from lsc_core.store import ACTIVE_STATES, FINISHED_STATES, Store

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "app_pages" / "build.py"
TIMEOUT_S = 60  # the first run of a page imports pandas/altair and starts the worker thread


@pytest.fixture
def env(app_env):
    return app_env


@pytest.fixture
def app_with_runs_page(tmp_path, env):
    """An entry script routing to the real Build page and to a stand-in Runs page (the real
    one is another page's test), so Launch's switch to app_pages/runs.py can be followed."""
    (tmp_path / "app_pages").mkdir()
    (tmp_path / "app_pages" / "runs.py").write_text(
        "import streamlit as st\nst.header('Runs stand-in')\nst.write(st.session_state.get('selected_run'))\n")
    entry = tmp_path / "entry.py"
    entry.write_text("import streamlit as st\n"
                     f"st.navigation([st.Page({str(BUILD)!r}, default=True), st.Page('app_pages/runs.py')]).run()\n")
    return AppTest.from_file(str(entry), default_timeout=TIMEOUT_S)


def token(at) -> str:
    return at.session_state["build_editor"].token


def layer_key(at, position: int, name: str) -> str:
    state = at.session_state["build_editor"]
    return f"{state.token}-L{state.layers[position - 1]['uid']}-{name}"


def hp(at, name: str) -> str:
    return f"{token(at)}-hp-{name}"


def blocks(block):
    """Every block below `block`, depth first."""
    for child in block.children.values():
        if hasattr(child, "children"):
            yield child
            yield from blocks(child)


def keys_in(block) -> set:
    return {getattr(node, "key", None) for node in block}


def block_showing_error(at, message: str):
    """The one block that directly holds an st.error with `message` (shown as text: Markdown-escaped)."""
    holders = [b for b in blocks(at.main) if any(getattr(c, "type", None) == "error" and
                                                 getattr(c, "value", None) == plain(message)
                                                 for c in b.children.values())]
    assert 1 == len(holders), holders
    return holders[0]


def load_preset(at, name: str):
    at.selectbox(key="start_preset").set_value(name)
    return at.button(key="load_preset").click().run()


def test_edit_seed_part2_see_errors_in_place_fix_and_launch(app_with_runs_page, env):
    at = app_with_runs_page.run()
    assert [] == at.exception
    load_preset(at, "seed-part2")
    assert ["2,165,428"] == [m.value for m in at.metric]
    assert 2_165_428 == at.dataframe[0].value["params"].sum()
    assert not at.button(key="launch").disabled

    # An impossible dropout: the error sits in layer 4's box, launch is refused.
    at.number_input(key=layer_key(at, 4, "rate")).set_value(1.0).run()
    message = "layer 4 (dropout): rate must be in [0, 1), got 1.0"
    box = block_showing_error(at, message)
    assert layer_key(at, 4, "rate") in keys_in(box)
    assert layer_key(at, 5, "filters") not in keys_in(box)
    summary = at.dataframe[0].value
    assert [4] == list(summary[summary["layer"].str.startswith(editor.PROBLEM_MARK)]["position"])
    assert at.button(key="launch").disabled

    at.number_input(key=layer_key(at, 4, "rate")).set_value(0.25).run()
    assert [] == [e.value for e in at.error]
    assert not at.button(key="launch").disabled

    # A pooling layer added after flatten is refused at its own position; removing it clears that.
    at.selectbox(key="add_kind").set_value("maxpool2d")
    at.button(key="add_layer").click().run()
    assert "maxpool2d" == at.session_state["build_editor"].layers[-1]["kind"]
    assert layer_key(at, 11, "pool_size") in keys_in(block_showing_error(
        at, "layer 11 (maxpool2d): needs a feature map, but its input is already flat (128,); "
            "move it before flatten/dense"))
    assert at.button(key="launch").disabled
    at.button(key=layer_key(at, 11, "remove")).click().run()
    assert ([], False) == ([e.value for e in at.error], at.button(key="launch").disabled)

    at.number_input(key=hp(at, "epochs")).set_value(1)
    at.number_input(key=hp(at, "limit")).set_value(200).run()
    at.button(key="launch").click().run()
    assert [] == at.exception

    runs = Store(env).list_runs()
    assert 1 == len(runs)
    run = runs[0]
    try:
        assert preset("seed-part2", epochs=1, limit=200) == run.config
        assert run.status in ACTIVE_STATES
        assert run.id == at.session_state["selected_run"]
        assert ["Runs stand-in"] == [h.value for h in at.header]  # Launch took the person to the run
    finally:
        Store(env).request_stop(run.id)  # the background worker ends it after its current batch
        deadline = time.monotonic() + TIMEOUT_S
        while Store(env).get_run(run.id).status not in FINISHED_STATES and time.monotonic() < deadline:
            time.sleep(0.2)


def test_reorder_and_hyperparameters_reach_the_config(env):
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    load_preset(at, "seed-part1")
    at.button(key=layer_key(at, 2, "down")).click().run()  # maxpool below the second conv
    at.number_input(key=layer_key(at, 1, "filters")).set_value(16)
    at.selectbox(key=layer_key(at, 1, "activation")).set_value("gelu").run()
    at.radio(key=hp(at, "label_mode")).set_value("fine")
    at.selectbox(key=hp(at, "optimizer")).set_value("sgd").run()
    at.number_input(key=hp(at, "momentum")).set_value(0.9)
    at.number_input(key=hp(at, "learning_rate")).set_value(0.01)
    at.radio(key=hp(at, "validation")).set_value("holdout").run()
    at.number_input(key=hp(at, "holdout_fraction")).set_value(0.2)
    at.multiselect(key=hp(at, "augment")).set_value(["crop", "flip"])
    at.text_input(key=hp(at, "name")).input("mine").run()
    assert [] == at.exception
    expected = preset("seed-part1", label_mode="fine", optimizer="sgd", momentum=0.9, learning_rate=0.01,
                      validation="holdout", holdout_fraction=0.2, augment=("flip", "crop"), name="mine")
    layers = list(expected.layers)
    layers[0] = layers[0].make("conv2d", filters=16, activation="gelu")
    layers[1], layers[2] = layers[2], layers[1]
    assert expected.replace(layers=tuple(layers)) == at.session_state["build_editor"].to_config()


def test_speed_settings_reach_the_config_and_a_bad_split_is_shown_in_place(env):
    from lsc_core.config import SpeedSettings

    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    load_preset(at, "seed-part1")
    speed = f"{token(at)}-speed-"
    assert "auto" == at.selectbox(key=speed + "mixed_precision").value
    at.selectbox(key=speed + "mixed_precision").set_value("off")
    at.selectbox(key=speed + "xla").set_value("on")
    at.number_input(key=speed + "steps_per_execution").set_value(8)
    at.number_input(key=speed + "replicas").set_value(3).run()
    assert [] == at.exception
    assert SpeedSettings(mixed_precision=False, xla=True, steps_per_execution=8, replicas=3) == \
        at.session_state["build_editor"].to_config().speed
    block_showing_error(at, "speed: batch size 64 does not split evenly over 3 replicas")
    at.number_input(key=speed + "replicas").set_value(2).run()
    assert 2 == at.session_state["build_editor"].to_config().speed.replicas
    assert not [e for e in at.error if "replicas" in e.value]


def test_clone_from_an_earlier_run_and_from_the_runs_pages_button(env):
    config = preset("seed-part2-dropout", label_mode="fine", optimizer="adamw", learning_rate=3e-4, batch_size=32,
                    epochs=7, seed=5, name="earlier")
    run_id = Store(env).create_run(config)
    Store(env).request_stop(run_id)  # keep the background worker from training it
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    at.selectbox(key="start_run").set_value(run_id)
    at.button(key="clone_run").click().run()
    assert config.replace(name=None) == at.session_state["build_editor"].to_config()
    assert ("fine", "adamw", 7) == (at.radio(key=hp(at, "label_mode")).value,
                                    at.selectbox(key=hp(at, "optimizer")).value,
                                    at.number_input(key=hp(at, "epochs")).value)

    fresh = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S)
    fresh.session_state["clone_config"] = config.to_dict()
    fresh.run()
    assert [] == fresh.exception
    assert config.replace(name=None) == fresh.session_state["build_editor"].to_config()
    assert "clone_config" not in fresh.session_state  # used once, not on every rerun


def test_a_broken_clone_gets_one_message_and_keeps_the_network(env):
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S)
    at.session_state["clone_config"] = {"layers": [], "colour": "red"}
    at.run()
    assert [] == at.exception
    assert [plain("Could not load it: unknown setting(s): colour")] == [e.value for e in at.error]
    assert preset("seed-part2") == at.session_state["build_editor"].to_config()


def test_transfer_learning_form(env):
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    at.radio(key=f"{token(at)}-network").set_value("transfer").run()
    at.selectbox(key=f"{token(at)}-bb-name").set_value("xception").run()
    size = at.number_input(key=f"{token(at)}-bb-image_size-xception")
    assert (96, 71, 299) == (size.value, size.min, size.max)
    at.radio(key=f"{token(at)}-bb-weights").set_value("none")
    at.number_input(key=f"{token(at)}-bb-fine_tune_epochs").set_value(2)
    at.number_input(key=f"{token(at)}-bb-head_units").set_value(0).run()
    assert [] == at.exception
    expected = BackboneSpec(name="xception", weights="none", image_size=96, head_units=0, fine_tune_epochs=2)
    config = at.session_state["build_editor"].to_config()
    assert (expected, ()) == (config.backbone, config.layers)
    assert ["20,902,460"] == [m.value for m in at.metric]  # 20,861,480 frozen + 2048 * 20 + 20 head
    assert not at.button(key="launch").disabled


def test_scratch_refuses_launch_until_a_layer_is_added(env):
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    at.button(key="from_scratch").click().run()
    assert plain("the network has no layers; add at least one") in [e.value for e in at.error]
    assert at.button(key="launch").disabled
    at.selectbox(key="add_kind").set_value("flatten")
    at.button(key="add_layer").click().run()
    assert [] == [e.value for e in at.error]
    assert ["61,460"] == [m.value for m in at.metric]  # 3072 * 20 + 20


def test_launch_shows_the_work_and_asks_first_when_it_would_take_over_an_hour(env):
    from lsc_core.config import analyze
    from lsc_core.store import COMPLETED, RUNNING

    store = Store(env)
    measured = store.create_run(preset("seed-part2", epochs=1, name="slow"), status=RUNNING)
    store.start_run(measured, params=analyze(preset("seed-part2")).total_params, versions={}, device="")
    store.log_epoch(measured, 1, {"val_accuracy": 0.1}, 600.0)  # 10 minutes per full epoch
    store.finish_run(measured, COMPLETED)
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert any(c.value.startswith("Launch queues 1 run x 10 epochs x 50,000 images = 500,000 training images; "
                                  f"about 1h 40m (measured: run {measured} on this device)") for c in at.caption)
    assert ["Confirm first: it should take about 1h 40m."] == [w.value for w in at.warning]
    assert at.button(key="launch").disabled
    next(c for c in at.checkbox if c.label == "Queue it anyway").check().run()
    assert not at.button(key="launch").disabled
    at.number_input(key=hp(at, "epochs")).set_value(5).run()  # 50 min: no question, and a new form asks anew
    assert ([], False) == ([w.value for w in at.warning], at.button(key="launch").disabled)


def test_a_residual_preset_says_what_it_is_and_what_it_was_measured_to_reach(app_with_runs_page, env):
    at = app_with_runs_page.run()
    at.selectbox(key="start_preset").set_value("resnet-fast").run()
    card = [m.value for m in at.expander[0].markdown]
    assert 1 == len(card) and "785,732 fine" in card[0]
    assert "fine: 0.645 test accuracy in 18 min (20 epochs) on 2-core AMD EPYC CPU" in card[0]
    at.button(key="load_preset").click().run()
    assert [] == at.exception
    assert ["765,172"] == [m.value for m in at.metric]
    assert "residual 64 relu l2 0.00025" in list(at.dataframe[0].value["layer"])
    at.selectbox(key="start_preset").set_value("resnet9").run()
    assert "**Measured:** not measured yet" in at.expander[0].markdown[0].value


def test_the_form_is_kept_across_sessions_until_reset(env):
    first = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    first.number_input(key=hp(first, "epochs")).set_value(7).run()
    first.number_input(key=hp(first, "limit")).set_value(300).run()
    # A reload or another tab is a new session: it opens the form as it was left.
    second = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    assert not second.exception
    assert (7, 300) == (second.number_input(key=hp(second, "epochs")).value,
                        second.number_input(key=hp(second, "limit")).value)
    second.button(key="reset_form").click().run()
    assert (10, None) == (second.number_input(key=hp(second, "epochs")).value,
                          second.number_input(key=hp(second, "limit")).value)
    third = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    assert 10 == third.number_input(key=hp(third, "epochs")).value
def test_recipe_settings_draw_the_schedule_and_preview_the_augmentations(env):
    at = AppTest.from_file(str(BUILD), default_timeout=TIMEOUT_S).run()
    load_preset(at, "seed-part1")
    at.number_input(key=hp(at, "epochs")).set_value(6).run()
    at.selectbox(key=hp(at, "schedule")).set_value("cosine").run()
    at.number_input(key=hp(at, "warmup_epochs")).set_value(1)
    at.selectbox(key=hp(at, "optimizer")).set_value("sgd").run()
    at.checkbox(key=hp(at, "nesterov")).check()
    at.number_input(key=hp(at, "weight_decay")).set_value(5e-4)
    at.number_input(key=hp(at, "label_smoothing")).set_value(0.1)
    at.number_input(key=hp(at, "early_stopping")).set_value(2)
    at.multiselect(key=hp(at, "augment")).set_value(["flip", "cutout"])
    at.checkbox(key=hp(at, "tta")).check().run()
    assert [] == at.exception and [] == at.error
    expected = preset("seed-part1", epochs=6, schedule="cosine", warmup_epochs=1, optimizer="sgd", nesterov=True,
                      weight_decay=5e-4, label_smoothing=0.1, early_stopping=2, augment=("flip", "cutout"), tta=True)
    assert expected == at.session_state["build_editor"].to_config()
    charts = [c for c in at.get("vega_lite_chart")]
    assert any("Learning rate over the run" in str(c.proto.spec) for c in charts)
    originals, augmented = at.get("image")  # the training images, and the same under the augmentations
    assert (16, 16) == (len(originals.proto.imgs), len(augmented.proto.imgs))
    # a warm-up as long as the run is refused where it was typed, and the chart is not drawn
    at.number_input(key=hp(at, "warmup_epochs")).set_value(6).run()
    assert ["warmup_epochs: the warm-up (6 epochs) must be shorter than the run (6 epochs)"] == \
        [e.value for e in at.error]
    assert not any("Learning rate over the run" in str(c.proto.spec) for c in at.get("vega_lite_chart"))
    assert at.button(key="launch").disabled
