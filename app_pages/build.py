"""Build & Train: start from a preset, an earlier run or scratch; edit the layers or pick a
backbone; see every layer's shape, parameters and problems live; launch into the queue.

The network being edited lives in st.session_state[EDITOR] (an lsc_core.editor.EditorState).
Widgets write into it through on_change callbacks, which run before the script, so the
summary and the error next to each layer always describe what is on screen.
"""
import streamlit as st

from lsc_core import editor, estimates, views
from lsc_core.backbones import BACKBONES, WEIGHTS
from lsc_core.config import LABEL_MODE_NAMES, LABEL_MODES, OPTIMIZERS, PRESETS, ConfigError, analyze
from lsc_core.markup import plain
from app_pages import common, recipe_form

EDITOR = "build_editor"  # the EditorState being edited
NOTICE = "build_notice"  # one message about the last start, shown once
DRAFT = "build"  # the store's draft of this form: it survives reloads and opens in new tabs
SAVED_DRAFT = "build_saved_draft"  # the draft text last written, so a rerun with no edit writes nothing
DEFAULT_PRESET = "seed-part2"  # the study's best network
VALIDATION_LABELS = {"test": "Test set (as in the study)", "holdout": "Hold-out part of the training set"}
NETWORK_LABELS = {editor.CUSTOM: "Custom layers", editor.TRANSFER: "Transfer learning (pretrained backbone)"}
HYPERPARAMETER_FIELDS = ("label_mode", "optimizer", "learning_rate", "momentum", "batch_size", "epochs",
                         "validation", "holdout_fraction", "limit", "seed", "name")
BACKBONE_FIELDS = ("name", "weights", "image_size", "head_units", "head_dropout", "fine_tune_epochs",
                   "fine_tune_layers", "fine_tune_learning_rate")


# -- Callbacks: widgets -> EditorState -------------------------------------------------------
def _state() -> editor.EditorState:
    return st.session_state[EDITOR]


def _start(make, notice: str) -> None:
    """Replace the network being edited; a start that cannot be read leaves it as it was."""
    try:
        st.session_state[EDITOR] = make()
        st.session_state[NOTICE] = ("success", notice)
    except ConfigError as exc:
        st.session_state[NOTICE] = ("error", f"Could not load it: {exc}")


def _load_preset() -> None:
    name = st.session_state["start_preset"]
    _start(lambda: editor.from_preset(name), f"Loaded preset {name}.")


def _clone_run(runs: dict[int, dict]) -> None:
    run = runs[st.session_state["start_run"]]
    _start(lambda: editor.from_run_config(run.stored_config), f"Loaded the config of run {run.name}.")


def _reset() -> None:
    _start(lambda: editor.from_preset(DEFAULT_PRESET), f"Reset: preset {DEFAULT_PRESET} with the default settings.")


def _restore_draft() -> editor.EditorState:
    """The form as it was last left (in any tab, before any reload), else the default preset."""
    text = common.store().load_draft(DRAFT)
    if text is not None:
        try:
            return editor.from_draft(text)
        except ConfigError:  # a draft from another version: start afresh rather than fail
            pass
    return editor.from_preset(DEFAULT_PRESET)


def _from_scratch() -> None:
    _start(editor.scratch, "Started an empty network: add layers below.")


def _set_param(uid: int, name: str, key: str) -> None:
    _state().set_param(uid, name, st.session_state[key])


def _set_setting(name: str, key: str) -> None:
    _state().set_setting(name, st.session_state[key])


def _set_speed(name: str, key: str) -> None:
    _state().set_speed(name, st.session_state[key])


def _set_backbone(name: str, key: str) -> None:
    _state().set_backbone(name, st.session_state[key])


def _set_network(key: str) -> None:
    _state().set_network(st.session_state[key])


def _add_layer(position_key: str) -> None:
    _state().add_layer(st.session_state["add_kind"], st.session_state[position_key])


# -- Widgets --------------------------------------------------------------------------------
def _number(label: str, value, key: str, on_change, args, **limits):
    """A number input that shows an unreadable stored value as empty instead of failing."""
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return st.number_input(label, value=shown, key=key, on_change=on_change, args=args, **limits)


def _shown(key: str, options, value) -> None:
    """Drive a choice widget through st.session_state[key]: it shows `value` when first drawn
    (its key is new with each fresh network), then the person's choice; never an index=
    recomputed on every rerun, which makes Streamlit see a new widget and drop the choice."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = value if value in options else options[0]


def _param_widget(state: editor.EditorState, layer: dict, name: str, spec) -> None:
    key = f"{state.token}-L{layer['uid']}-{name}"
    value = layer["params"].get(name)
    args = (layer["uid"], name, key)
    if spec.kind == "choice":
        options = list(spec.options) + ([] if value in spec.options else [value])
        _shown(key, options, value)
        st.selectbox(spec.label, options, key=key, on_change=_set_param, args=args,
                     help=spec.help or None)
    elif spec.kind == "int":
        _number(spec.label, value, key, _set_param, args, step=1, format="%d", help=spec.help or None)
    else:
        _number(spec.label, value, key, _set_param, args, step=spec.step, format=spec.format, help=spec.help or None)


def _layer_editor(state: editor.EditorState, analysis) -> None:
    rows = {row.position: row for row in analysis.rows}
    for position, layer in enumerate(state.layers, start=1):
        row = rows.get(position)
        with st.container(border=True):
            # Title and buttons on one line, the fields below across the box's whole width: beside
            # the title they were too narrow for their values ("sam" for "same") and labels.
            head, buttons = st.columns([5, 2], vertical_alignment="center")
            shape = (f" :gray[→ {editor.shape_text(row.output_shape)}, {row.params:,} params]"
                     if row is not None and row.output_shape else "")
            head.markdown(f"**{position}. {plain(layer['kind'])}**{shape}")
            specs = editor.layer_fields(layer["kind"])
            if specs:
                # Choices need room for their longest option; numbers less.
                widths = [1.4 if spec.kind == "choice" else 1 for _, spec in specs]
                for column, (name, spec) in zip(st.columns(widths), specs):
                    with column:
                        _param_widget(state, layer, name, spec)
            else:
                head.caption("no parameters")
            up, down, remove = buttons.columns(3, gap="small")
            uid = layer["uid"]
            up.button("", icon=":material/arrow_upward:", key=f"{state.token}-L{uid}-up", help="Move up",
                      on_click=state.move_layer, args=(uid, -1), disabled=position == 1)
            down.button("", icon=":material/arrow_downward:", key=f"{state.token}-L{uid}-down", help="Move down",
                        on_click=state.move_layer, args=(uid, 1), disabled=position == len(state.layers))
            remove.button("", icon=":material/delete:", key=f"{state.token}-L{uid}-remove", help="Remove",
                          on_click=state.remove_layer, args=(uid,))
            for message in analysis.errors_at(position):
                st.error(plain(message), icon=":material/error:")
    head_position = len(state.layers) + 1
    st.caption(f"{head_position}. dense softmax head, added from the label mode")
    for message in analysis.errors_at(head_position) + editor.errors_for(analysis, "layers"):
        st.error(plain(message), icon=":material/error:")
    kind_col, position_col, add_col = st.columns([3, 2, 2], vertical_alignment="bottom")
    kind_col.selectbox("Add a layer", editor.LAYER_KINDS, key="add_kind", format_func=editor.kind_label)
    # Keyed by the length, so the suggested position follows the end as layers come and go.
    position_key = f"add_position_{head_position}"
    position_col.number_input("at position", min_value=1, max_value=head_position, value=head_position,
                              step=1, key=position_key)
    add_col.button("Add layer", icon=":material/add:", on_click=_add_layer, args=(position_key,), key="add_layer")


def _field_errors(analysis, name: str) -> None:
    for message in editor.errors_for(analysis, name):
        st.error(plain(message), icon=":material/error:")


def _backbone_editor(state: editor.EditorState, analysis) -> None:
    spec, token = state.backbone, state.token
    key = f"{token}-bb-name"
    names = list(BACKBONES)
    _shown(key, names, spec["name"])
    st.selectbox("Backbone", names, key=key,
                 format_func=lambda n: f"{BACKBONES[n].application} (from {BACKBONES[n].min_size} px, "
                                       f"{BACKBONES[n].params:,} params)",
                 on_change=_set_backbone, args=("name", key))
    low, high = editor.image_size_range(state.backbone["name"]) if spec["name"] in BACKBONES else (1, 299)
    left, right = st.columns(2)
    with left:
        key = f"{token}-bb-weights"
        _shown(key, WEIGHTS, spec["weights"])
        st.radio("Weights", WEIGHTS, key=key, horizontal=True, on_change=_set_backbone, args=("weights", key),
                 help="imagenet: pretrained, from the Keras cache or downloaded once; none: random start")
        key = f"{token}-bb-image_size-{spec['name']}"  # a new backbone gets a new widget with its default
        _number("Image size (px)", spec["image_size"], key, _set_backbone, ("image_size", key), min_value=low,
                max_value=high, step=1, help=f"the 32x32 images are upscaled to this; {low} to {high} here")
        key = f"{token}-bb-head_units"
        _number("Head units", spec["head_units"], key, _set_backbone, ("head_units", key), min_value=0, step=32,
                help="dense layer of the new head; 0 for none")
        key = f"{token}-bb-head_dropout"
        _number("Head dropout", spec["head_dropout"], key, _set_backbone, ("head_dropout", key), min_value=0.0,
                max_value=1.0, step=0.05)
    with right:
        key = f"{token}-bb-fine_tune_epochs"
        _number("Fine-tune epochs", spec["fine_tune_epochs"], key, _set_backbone, ("fine_tune_epochs", key),
                min_value=0, step=1, help="a second phase with the top backbone layers unfrozen; 0 for none")
        key = f"{token}-bb-fine_tune_layers"
        _number("Fine-tune layers", spec["fine_tune_layers"], key, _set_backbone, ("fine_tune_layers", key),
                min_value=1, step=1, help="how many top backbone layers are unfrozen (batch norm stays frozen)")
        key = f"{token}-bb-fine_tune_learning_rate"
        _number("Fine-tune learning rate", spec["fine_tune_learning_rate"], key, _set_backbone,
                ("fine_tune_learning_rate", key), min_value=0.0, max_value=1.0, step=1e-5, format="%g")
    for name in BACKBONE_FIELDS:
        _field_errors(analysis, name)


def _hyperparameters(state: editor.EditorState, analysis) -> None:
    s, token = state.settings, state.token

    def key(name: str) -> str:
        return f"{token}-hp-{name}"

    def bind(name: str) -> dict:
        return {"key": key(name), "on_change": _set_setting, "args": (name, key(name))}

    first, second, third = st.columns(3)
    with first:
        _shown(key("label_mode"), LABEL_MODES, s["label_mode"])
        st.radio("Labels", LABEL_MODES, horizontal=True,
                 format_func=LABEL_MODE_NAMES.get,
                 **bind("label_mode"))
        _shown(key("optimizer"), OPTIMIZERS, s["optimizer"])
        st.selectbox("Optimizer", OPTIMIZERS, **bind("optimizer"))
        _number("Learning rate", s["learning_rate"], key("learning_rate"), _set_setting,
                ("learning_rate", key("learning_rate")), min_value=0.0, max_value=10.0, step=1e-4, format="%g")
        if s["optimizer"] == "sgd":
            _number("Momentum", s["momentum"], key("momentum"), _set_setting, ("momentum", key("momentum")),
                    min_value=0.0, max_value=1.0, step=0.1, help="0 is plain SGD, as in the study")
    with second:
        _number("Batch size", s["batch_size"], key("batch_size"), _set_setting,
                ("batch_size", key("batch_size")), min_value=1, step=16, help="the study found 64 best")
        _number("Epochs", s["epochs"], key("epochs"), _set_setting, ("epochs", key("epochs")), min_value=1, step=1)
        _number("Training images (empty: all)", s["limit"], key("limit"), _set_setting, ("limit", key("limit")),
                min_value=1, step=500, placeholder="all 50,000", help="train on the first N images only")
        _number("Seed", s["seed"], key("seed"), _set_setting, ("seed", key("seed")), min_value=0, step=1,
                help="weights, shuffling, hold-out and augmentation all follow it")
    with third:
        _shown(key("validation"), list(VALIDATION_LABELS), s["validation"])
        st.radio("Validate on", list(VALIDATION_LABELS), format_func=VALIDATION_LABELS.get, **bind("validation"))
        if s["validation"] == "holdout":
            _number("Hold-out fraction", s["holdout_fraction"], key("holdout_fraction"), _set_setting,
                    ("holdout_fraction", key("holdout_fraction")), min_value=0.0, max_value=1.0, step=0.05)
        st.text_input("Run name", value=s["name"] or "", placeholder=editor.default_run_name(state.to_config()),
                      **bind("name"))
    for name in HYPERPARAMETER_FIELDS:
        _field_errors(analysis, name)
    _speed_settings(state, analysis)


def _speed_settings(state: editor.EditorState, analysis) -> None:
    """The speed settings, each automatic unless set: on with a GPU, off on a CPU."""
    with st.expander("Speed: mixed precision, XLA, data on the GPU, several GPUs"):
        st.caption("Automatic turns each on when TensorFlow sees a GPU; on a CPU only 8 steps per execution. "
                   "The batch size above is "
                   "the total, split evenly over the replicas. The run records what it trained with.")
        columns = st.columns(len(editor.SPEED_SWITCHES) + len(editor.SPEED_COUNTS))
        for column, (name, label) in zip(columns, editor.SPEED_SWITCHES.items()):
            key = f"{state.token}-speed-{name}"
            st.session_state.setdefault(key, state.speed_choice(name))
            column.selectbox(label, list(editor.SPEED_SWITCH_VALUES), key=key, on_change=_set_speed,
                             args=(name, key))
        for column, (name, label) in zip(columns[len(editor.SPEED_SWITCHES):], editor.SPEED_COUNTS.items()):
            key = f"{state.token}-speed-{name}"
            with column:
                _number(label, state.speed_choice(name), key, _set_speed, (name, key), min_value=1, step=1,
                        placeholder="automatic")
        for name in (*editor.SPEED_SWITCHES, *editor.SPEED_COUNTS):
            _field_errors(analysis, name)


# -- Inputs ---------------------------------------------------------------------------------
st.title("Build & Train")
if common.CLONE_CONFIG in st.session_state:  # the Runs page's Clone button
    _start(lambda: editor.from_run_config(st.session_state.pop(common.CLONE_CONFIG)),
           "Loaded the cloned run's config.")
if EDITOR not in st.session_state:
    st.session_state[EDITOR] = _restore_draft()

with st.container(border=True):
    st.markdown("**Start from**")
    preset_col, run_col, scratch_col, reset_col = st.columns([3, 3, 1, 1], vertical_alignment="bottom")
    _shown("start_preset", list(PRESETS), DEFAULT_PRESET)
    preset_col.selectbox("A preset (the study's networks, or residual networks with a modern recipe)",
                         list(PRESETS), key="start_preset",
                         format_func=lambda n: f"{n}: {PRESETS[n].summary}")
    preset_col.button("Load preset", on_click=_load_preset, key="load_preset")
    runs = {run.id: run for run in common.store().list_runs()}
    run_col.selectbox("An earlier run", list(runs), key="start_run", placeholder="no runs yet",
                      format_func=lambda i: views.run_label(runs[i]))
    run_col.button("Clone run", on_click=_clone_run, args=(runs,), key="clone_run",
                   disabled=not runs or st.session_state.get("start_run") not in runs)
    scratch_col.button("Scratch", on_click=_from_scratch, key="from_scratch", help="an empty network")
    reset_col.button("Reset", on_click=_reset, key="reset_form", icon=":material/restart_alt:",
                     help=f"Back to preset {DEFAULT_PRESET} with the default settings. The form is otherwise "
                          "kept as you leave it, across reloads and in new tabs.")
    with st.expander(f"About {st.session_state['start_preset']}"):
        st.markdown(editor.preset_card(st.session_state["start_preset"]))
notice = st.session_state.pop(NOTICE, None)
if notice:
    (st.success if notice[0] == "success" else st.error)(plain(notice[1]))

state = _state()
draft = editor.to_draft(state)  # every edit is kept in the store at once: a reload or new tab reopens it
if draft != st.session_state.get(SAVED_DRAFT) and not common.store().read_only:  # a read-only store keeps none
    common.store().save_draft(DRAFT, draft)
    st.session_state[SAVED_DRAFT] = draft
analysis = analyze(state.to_config())

network_key = f"{state.token}-network"
_shown(network_key, list(NETWORK_LABELS), state.network)
st.radio("Network", list(NETWORK_LABELS), format_func=NETWORK_LABELS.get, horizontal=True, key=network_key,
         on_change=_set_network, args=(network_key,))
# The summary's four columns need 376 px (+ borders) to show in full beside the editor: 3/7 of
# the ~940 px main column at 1400 px gives ~390.
editor_col, summary_col = st.columns([4, 3], gap="medium")
with editor_col:
    if state.network == editor.TRANSFER:
        _backbone_editor(state, analysis)
    else:
        _layer_editor(state, analysis)

# -- Render: the live summary ---------------------------------------------------------------
with summary_col:
    st.metric("Total parameters" if analysis.ok else "Parameters up to the first problem",
              f"{analysis.total_params:,}")
    summary = editor.summary_frame(analysis)
    # Tall enough for every row: the summary is read beside the editor, not scrolled.
    st.dataframe(summary, hide_index=True, width="stretch", height=35 * (len(summary) + 1) + 3, column_config={
        "position": st.column_config.NumberColumn("#", width=36),
        "layer": st.column_config.TextColumn(width=160, help=f"{editor.PROBLEM_MARK}marks a layer with a problem; "
                                                             "it is spelled out in the layer's box"),
        "output": st.column_config.TextColumn(width=80),
        "params": common.PARAMS_COLUMN})

st.subheader("Training")
_hyperparameters(state, analysis)
recipe_form.render(state, analysis)

# -- Guard and call -------------------------------------------------------------------------
shown_fields = HYPERPARAMETER_FIELDS + editor.RECIPE_FIELDS + BACKBONE_FIELDS + ("layers",)
for message in editor.general_errors(analysis, shown_fields):
    st.error(plain(message), icon=":material/error:")  # belongs to no field on screen (a hidden setting)
if not analysis.ok:
    st.warning(f"{len(analysis.errors)} problem(s) to fix before launching; each is shown where it occurs.",
               icon=":material/block:")
config = state.to_config()
ready = analysis.ok
if analysis.ok:  # what Launch queues, how long it should take here; a long or repeated launch asks first
    twin = estimates.queued_twin(common.store(), config)
    repeats = twin and f"run #{twin.id} {plain(twin.name)} with exactly this config is still {twin.status}"
    estimate = estimates.estimate(common.store(), [config], common.manager().device)
    ready = common.launch_summary(estimate, estimates.confirm_reasons(estimate, repeats),
                                  confirm_key=f"confirm-{hash(config.to_json())}")
if st.button("Launch", type="primary", icon=":material/rocket_launch:", disabled=not ready, key="launch"):
    try:
        run_id = common.manager().submit(config)
    except ConfigError as exc:  # the form's own checks passed, so this is rare (e.g. a store limit)
        st.error(f"Not launched: {plain(exc)}")
        st.stop()
    common.select_run(run_id)
