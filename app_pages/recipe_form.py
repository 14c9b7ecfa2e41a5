"""The Build page's training-recipe section: schedule, regularisation, stopping, augmentation.

Not a page: app_pages/build.py calls `render`. Widgets write into the page's EditorState
through on_change callbacks (as the rest of the form does); the schedule is drawn and the
augmentations previewed on real training images before anything is launched.
"""
from __future__ import annotations

import streamlit as st

from lsc_core import charts, editor
from lsc_core.augment import AUGMENTATIONS
from lsc_core.data import DataError
from lsc_core.schedules import SCHEDULES
from app_pages import common

PREVIEW_SEED = "build_preview_seed"  # bumped by "New draw": another batch of random choices
PREVIEW_PX = 64  # each 32x32 image shown at twice its size


def _bound(key: str, value) -> str:
    """Give a widget its starting value through session_state (no index= recomputed each run)."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def _set(state: editor.EditorState, name: str, key: str) -> None:
    state.set_setting(name, st.session_state[key])


def _number(state, label: str, name: str, **options) -> None:
    key = f"{state.token}-hp-{name}"
    value = state.settings[name]
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    st.number_input(label, value=shown, key=key, on_change=_set, args=(state, name, key), **options)


def _choice(state, widget, label: str, name: str, options, **extra) -> None:
    key = _bound(f"{state.token}-hp-{name}", state.settings[name])
    widget(label, options, key=key, on_change=_set, args=(state, name, key), **extra)


def _schedule_settings(state: editor.EditorState) -> None:
    _choice(state, st.selectbox, "Learning-rate schedule", "schedule", list(SCHEDULES),
            format_func=lambda n: SCHEDULES[n].label if n in SCHEDULES else n)
    _number(state, "Warm-up epochs", "warmup_epochs", min_value=0, step=1,
            help="linear rise to the learning rate over these epochs; one-cycle: its rise (0: 30% of the run)")
    if state.settings["schedule"] == "step":
        _number(state, "Decay every (epochs, empty: a third of the run)", "decay_every", min_value=1, step=1)
        _number(state, "Decay factor", "decay_factor", min_value=0.0, max_value=1.0, step=0.05, format="%g")


def _regularisation(state: editor.EditorState) -> None:
    _number(state, "Weight decay", "weight_decay", min_value=0.0, max_value=1.0, step=1e-4, format="%g",
            help="decoupled: each step takes learning rate x this x weight off every kernel (5e-4 is usual for SGD)")
    _number(state, "Label smoothing", "label_smoothing", min_value=0.0, max_value=1.0, step=0.05, format="%g",
            help="share of each target spread over all classes (0.1 is usual)")
    if state.settings["optimizer"] == "sgd":
        key = _bound(f"{state.token}-hp-nesterov", bool(state.settings["nesterov"]))
        st.checkbox("Nesterov momentum", key=key, on_change=_set, args=(state, "nesterov", key))


def _stopping(state: editor.EditorState) -> None:
    _number(state, "Early stopping patience (0: off)", "early_stopping", min_value=0, step=1,
            help="end the run after this many epochs without a better validation accuracy; it ends completed")
    _number(state, "Reduce on plateau: patience (0: off)", "plateau_patience", min_value=0, step=1,
            help="after this many epochs without a better validation accuracy, multiply the rate by the factor")
    if state.settings["plateau_patience"]:
        _number(state, "Reduce on plateau: factor", "plateau_factor", min_value=0.0, max_value=1.0, step=0.1,
                format="%g")


def _augmentation(state: editor.EditorState) -> None:
    _choice(state, st.multiselect, "Augmentations of the training images", "augment", list(AUGMENTATIONS),
            format_func=lambda n: AUGMENTATIONS[n].label if n in AUGMENTATIONS else n, placeholder="none",
            help="applied on the fly to each training batch, in the menu's order, seeded by the run's seed; "
                 "validation and test images are never changed")
    key = _bound(f"{state.token}-hp-tta", bool(state.settings["tta"]))
    st.checkbox("Also measure test accuracy with flip averaging (test-time augmentation)", key=key,
                on_change=_set, args=(state, "tta", key), help="reported beside the plain figure, not instead of it")


def _preview(ops) -> None:
    """Real training images and the same images as one training batch would see them."""
    try:
        data = common.manager().load_data()
    except DataError as exc:
        st.warning(f"No preview: {exc}")
        return
    seed = st.session_state.setdefault(PREVIEW_SEED, 0)
    originals, augmented = editor.preview_images(data, ops, seed=seed)
    st.caption("Training images as loaded (top) and as one training batch sees them (bottom).")
    st.image(list(originals), width=PREVIEW_PX)
    st.image(list(augmented), width=PREVIEW_PX)
    st.button("New draw", icon=":material/casino:", key="preview_redraw",
              on_click=lambda: st.session_state.update({PREVIEW_SEED: seed + 1}))


def render(state: editor.EditorState, analysis) -> None:
    """The recipe's widgets, the schedule chart and the augmentation preview."""
    st.markdown("**Recipe**")
    schedule_col, regular_col, stop_col = st.columns(3)
    with schedule_col:
        _schedule_settings(state)
    with regular_col:
        _regularisation(state)
    with stop_col:
        _stopping(state)
    for name in editor.RECIPE_FIELDS:
        for message in editor.errors_for(analysis, name):
            st.error(message, icon=":material/error:")
    config = state.to_config()
    frame = editor.schedule_frame(config)
    if frame is not None:
        st.altair_chart(charts.schedule_chart(frame), width="content")
    _augmentation(state)
    if state.settings["augment"] and not editor.errors_for(analysis, "augment"):
        _preview(tuple(state.settings["augment"]))
