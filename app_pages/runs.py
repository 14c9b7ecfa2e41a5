"""Runs: every run in the store, one run's live curves and config, and several runs compared."""
import functools

import streamlit as st

from lsc_core import charts, views
from lsc_core.artifacts import describe_model
from lsc_core.checkpoint import CheckpointError
from lsc_core.config import LABEL_MODES, MAX_EPOCHS
from lsc_core.export import FORMATS, ExportError, export_run_bytes
from lsc_core.markup import plain
from lsc_core.store import ACTIVE_STATES, FINISHED_STATES, RUNNING, StoreError
from app_pages import common

STATUSES = (*ACTIVE_STATES, *FINISHED_STATES)
TABLE_COLUMNS = {
    "name": st.column_config.TextColumn("name"),
    "status": st.column_config.TextColumn("status"),
    "label_mode": st.column_config.TextColumn("labels"),
    "params": common.PARAMS_COLUMN,
    "best_accuracy": st.column_config.NumberColumn("best val. acc.", format="%.4f",
                                                   help="on the test set, or the hold-out (see validation)"),
    "validation": st.column_config.TextColumn("validation"),
    "best_epoch": st.column_config.NumberColumn("best epoch"),
    "epochs_done": st.column_config.NumberColumn("epochs"),
    "epochs_planned": st.column_config.NumberColumn("of"),
    "duration": st.column_config.TextColumn("duration"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "source": st.column_config.TextColumn("source"),
    "tags": st.column_config.TextColumn("tags"),
}
EXPORTS = "model_exports"  # {(run id, best epoch, format): (bytes, suffix, check)} made in this session
COMPARE_PICK = "compare_runs"  # the key of Compare's run picker
CONFIRM_DELETE = "confirm_delete"  # the run whose Delete was clicked, awaiting "Yes, delete"
TAG_ERROR = "runs_page_error"  # a refused tag or delete, shown once on the next draw
CONTINUE_ERROR = "continue_error"  # a refused Resume / Train more, shown once by its button

st.title("Runs")
store = common.store()
if not store.list_runs():
    st.info("No runs yet. Launch one from Build & Train, or with `python -m lsc_core train`.")
    st.stop()

# Lazy tabs (common.KEEP_WHILE_CLOSED): each has its own live fragment, and only the open one
# refreshes, so a watched run shares the process with one refresh every LIVE_REFRESH_S, not two.
# ?tab=Compare in the address opens Compare on a reload or from a link.
SECTIONS = ("Runs", "Compare")
KEEP = common.KEEP_WHILE_CLOSED
runs_tab, compare_tab = st.tabs(SECTIONS, key="tab", bind="query-params")


# -- all runs and the one selected -----------------------------------------------------------
def open_clicked_row(key: str, ids: list[int]) -> None:
    """The table's on_select callback: the person's click opens that run. It runs before the
    fragment redraws, so the run below follows the first click; `ids` are the rows shown."""
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state[common.SELECTED_RUN] = ids[rows[0]]


@st.fragment(run_every=common.LIVE_REFRESH_S)
def runs_view(statuses: list, label_modes: list, text: str, tags: list, archived: bool) -> None:
    """The table and the selected run below it, one fragment: a click reruns just this, at once,
    and a live refresh re-reads both without touching the selection."""
    common.recheck_live_runs()
    table = views.filter_runs(views.runs_table(store), statuses, label_modes, text, tags, archived)
    ids = [int(i) for i in table["id"]]
    st.caption(f"{len(table)} run(s). Select a row to open it below.")
    # Keyed by the rows shown: a highlighted position must not point at another run once
    # runs are added or the filter changes (Streamlit keeps a keyed table's selection).
    key = f"runs_table-{hash(tuple(ids))}"
    st.dataframe(table, hide_index=True, width="stretch", column_order=["id", *TABLE_COLUMNS],
                 column_config=TABLE_COLUMNS, selection_mode="single-row", key=key, placeholder=common.EMPTY_CELL,
                 on_select=functools.partial(open_clicked_row, key, ids))
    run_id, message = views.initial_run(store, st.session_state.get(common.SELECTED_RUN),
                                        st.query_params.get("run"))
    if message:
        st.warning(plain(message))
    if run_id is None:  # the last run was just deleted
        st.info("No runs left. Launch one from Build & Train, or with `python -m lsc_core train`.")
        return
    st.session_state[common.SELECTED_RUN] = run_id
    st.query_params["run"] = str(run_id)  # the address bar names the run shown: a reload or a link opens it
    run = store.get_run(run_id)
    st.divider()
    name_col, clone_col = st.columns([3, 1], vertical_alignment="center")
    name_col.subheader(plain(run.name))
    if clone_col.button("Clone into Build & Train", icon=":material/content_copy:", key="clone_run"):
        st.session_state[common.CLONE_CONFIG] = run.stored_config
        st.switch_page(common.BUILD)
    organise(run)
    live_run(run)
    with st.expander("Config", expanded=False):
        run_config(run)


# -- keeping runs in order ---------------------------------------------------------------------
def organise(run: dict) -> None:
    """Tags, archive, delete and the note of the open run; each change goes to the store at once."""
    run_id = run.id
    tags_key = f"tags-{run_id}"
    if tags_key not in st.session_state:  # from the store once; afterwards the widget holds the person's edit
        st.session_state[tags_key] = list(run.tags)
    tags_col, archive_col, delete_col = st.columns([4, 1, 1], vertical_alignment="bottom")
    tags_col.multiselect("Tags", sorted(set(store.all_tags()) | set(st.session_state[tags_key])), key=tags_key,
                         accept_new_options=True, placeholder="add a tag", on_change=save_tags, args=(run_id,))
    archive_col.button("Unarchive" if run.archived else "Archive", key=f"archive-{run_id}",
                       icon=":material/inventory_2:", on_click=store.set_archived, args=(run_id, not run.archived),
                       help="Archived runs are hidden from the table until 'Archived' is ticked; nothing is removed.")
    running = run.status == RUNNING
    delete_col.button("Delete", key=f"delete-{run_id}", icon=":material/delete:", disabled=running,
                      on_click=st.session_state.__setitem__, args=(CONFIRM_DELETE, run_id),
                      help="Stop the run first." if running else "Asks for confirmation first.")
    if st.session_state.get(CONFIRM_DELETE) == run_id:
        confirm_delete(run)
    if TAG_ERROR in st.session_state:
        st.error(st.session_state.pop(TAG_ERROR))
    if run.note:
        st.text(run.note)  # as typed, never as Markdown
    with st.expander("Edit note" if run.note else "Add a note"):
        # Not a form: a form's text reaches the server only when submitted, so a draft would be
        # lost when the person opens Compare; this one is sent when the field loses focus and
        # kept while the tab is closed.
        st.text_area("Note", value=run.note or "", key=f"note-text-{run_id}", persist_state=KEEP,
                     placeholder="why this run was made, what it showed")
        # A callback: the note is stored before the page is drawn again, so it shows at once.
        st.button("Save note", key=f"save-note-{run_id}",
                  on_click=lambda: store.set_note(run_id, st.session_state[f"note-text-{run_id}"]))


def save_tags(run_id: int) -> None:
    try:
        store.set_tags(run_id, st.session_state[f"tags-{run_id}"])
    except StoreError as exc:  # a tag too long or with a comma: said once, the stored tags kept
        st.session_state[TAG_ERROR] = str(exc)
        st.session_state[f"tags-{run_id}"] = list(store.get_run(run_id).tags)


def confirm_delete(run: dict) -> None:
    st.warning(f"Delete run {run.id} ({plain(run.name)}) with its epochs, predictions and artifacts? "
               "This cannot be undone.")
    yes, no = st.columns(2)
    yes.button(f"Yes, delete run {run.id}", key="delete-confirmed", type="primary", on_click=delete_run,
               args=(run.id,))
    no.button("Cancel", key="delete-cancelled", on_click=st.session_state.pop, args=(CONFIRM_DELETE, None))


def delete_run(run_id: int) -> None:
    st.session_state.pop(CONFIRM_DELETE, None)
    try:
        store.delete_run(run_id)
    except StoreError as exc:  # it started running meanwhile, say
        st.session_state[TAG_ERROR] = str(exc)
        return
    st.session_state.pop(common.SELECTED_RUN, None)
    st.query_params.pop("run", None)


# -- one run ---------------------------------------------------------------------------------
def live_run(run: dict) -> None:
    """Everything about the run that changes while it trains, drawn on each live refresh.

    Still cheap once the run has finished (it keeps refreshing, as a failed run may be
    queued again): a few small queries and the chart; the model's bytes are read only
    when its download button is clicked.
    """
    run_id = run.id
    st.caption(views.status_line(run))
    if run.status in ACTIVE_STATES:
        live = views.live_progress(store, run)
        st.progress(live.fraction, text=live.describe())
        common.stop_button(run, key="stop_run")
    else:
        continue_controls(run)
    if run.error:
        st.error(f"This run {run.status}: {plain(run.error)}")
    if run.end_reason:
        st.info(f"Ended before its last epoch: {plain(run.end_reason)}", icon=":material/timer_off:")
    curves = views.curves(store, [run_id])
    if curves.empty:
        st.info("No epoch has finished yet; the curves appear after the first one.")
    else:
        st.altair_chart(charts.run_curves_chart(curves, run.best_epoch), width="content")
        rates = views.learning_rates(store, run_id)
        if not rates.empty:
            st.altair_chart(charts.learning_rate_chart(rates), width="content")
    system = views.system_frame(store, run_id)
    if not system.empty:
        st.altair_chart(charts.system_chart(system))
    speeds = views.throughput_frame(store, run_id)
    if not speeds.empty:
        st.markdown("**Speed per epoch**")
        st.dataframe(speeds, hide_index=True)
    downloads(run)


def continue_controls(run) -> None:
    """Resume (a stopped, interrupted or failed run) or N more epochs (a completed one), from the
    run's checkpoint; the job manager queues it, and a refusal is one line here."""
    action = store.continue_action(run)
    if action == "resume":
        st.button("Resume", key=f"resume-{run.id}", icon=":material/play_arrow:", on_click=continue_run,
                  args=(run.id, None),
                  help="Continue from its last stored epoch with the same settings, seed and schedule; "
                       "its epochs are kept.")
    elif action == "extend":
        count_col, button_col = st.columns([1, 2], vertical_alignment="bottom")
        more = count_col.number_input("More epochs", min_value=1, max_value=MAX_EPOCHS, value=5, step=1,
                                      key=f"more-epochs-{run.id}", persist_state=KEEP)
        button_col.button(f"Train {more} more epoch{'s' if more > 1 else ''}", key=f"extend-{run.id}",
                          icon=":material/add_circle:", on_click=continue_run, args=(run.id, f"more-epochs-{run.id}"),
                          help="Continue from its last epoch with its optimizer state; a cosine or one-cycle "
                               "schedule is stretched over the new length.")
    if CONTINUE_ERROR in st.session_state:
        st.error(st.session_state.pop(CONTINUE_ERROR))


def continue_run(run_id: int, epochs_key: str | None) -> None:
    """The Resume / Train-more button's callback (before the view redraws, so it shows the run queued)."""
    try:
        if epochs_key is None:
            common.manager().resume(run_id)
        else:
            common.manager().extend(run_id, int(st.session_state[epochs_key]))
    except (StoreError, CheckpointError) as exc:  # e.g. it was resumed from elsewhere meanwhile
        st.session_state[CONTINUE_ERROR] = plain(exc)


def downloads(run: dict) -> None:
    left, right = st.columns(2)
    with left:
        st.download_button("Curves (CSV)", views.curves_csv(store, run.id), file_name=f"{run.name}-curves.csv",
                           mime="text/csv", icon=":material/download:", key="download_csv")
    model = views.model_download(run)
    with right:
        if run.model_problem:  # a stored path outside the store's folder: never read, said why
            st.warning(plain(run.model_problem), icon=":material/block:")
        elif model is None:
            st.caption(f"The saved model file {plain(run.model_path)} is missing." if run.model_path
                       else "No trained model saved yet.")
        else:
            st.download_button("Best model (.keras)", model[0], file_name=model[1], mime="application/octet-stream",
                               icon=":material/download:", key="download_model")
            st.caption(plain(describe_model(run)))
    if model is not None:
        export_download(run)


def export_download(run: dict) -> None:
    """The model in another format: exported and checked on a click (seconds), kept for this session."""
    fmt_col, action_col = st.columns([1, 2], vertical_alignment="bottom")
    fmt = fmt_col.selectbox("Export as", FORMATS, key="export_format", persist_state=KEEP,
                            help="Checked before it is offered: top-1 identical to the Keras model on 100 test "
                                 "images, in the format's own runtime.")
    done = st.session_state.get(EXPORTS, {}).get((run.id, run.best_epoch, fmt))
    with action_col:
        if done is None:
            if st.button(f"Export {fmt}", icon=":material/output:", key="export_model"):
                try:
                    with st.spinner(f"Exporting and checking {fmt}..."):
                        done = export_run_bytes(run, fmt, common.data())
                except (ExportError, ValueError) as exc:
                    st.error(plain(exc))
                    return
                st.session_state.setdefault(EXPORTS, {})[(run.id, run.best_epoch, fmt)] = done
        if done is not None:
            content, suffix, check = done
            st.download_button(f"Download {fmt}", content, file_name=f"{run.name}-{fmt}{suffix}",
                               mime="application/octet-stream", icon=":material/download:", key="download_export")
    if done is not None:
        st.caption(done[2].describe())


def run_config(run: dict) -> None:
    view = views.run_config_view(run)
    if view["problem"]:
        st.warning(f"This config cannot be read by this version: {plain(view['problem'])}")
    layers, hyper, provenance = st.columns(3)
    with layers:
        st.markdown("**Layers**")
        st.markdown("\n".join(f"{n}. {plain(label)}" for n, label in enumerate(view["layers"], start=1))
                    or common.EMPTY_CELL)
    with hyper:
        st.markdown("**Hyperparameters**")
        st.table([{"setting": plain(k), "value": cell(v)} for k, v in view["hyperparameters"].items()])
    with provenance:
        st.markdown("**Provenance**")
        st.table([{"item": plain(k), "value": cell(v)} for k, v in view["provenance"].items()])


def cell(value) -> str:
    """A table cell as text: a dash for a missing value (not started, not finished), not "None"."""
    return common.EMPTY_CELL if value is None else plain(value)


def runs_section() -> None:
    with st.container(horizontal=True):
        statuses = st.multiselect("Status", STATUSES, placeholder="any status", key="runs_statuses",
                                  persist_state=KEEP)
        label_modes = st.multiselect("Label mode", LABEL_MODES, placeholder="coarse or fine", key="runs_label_modes",
                                     persist_state=KEEP)
        text = st.text_input("Name contains", placeholder="e.g. seed-part2", key="runs_name_text",
                             persist_state=KEEP)
        tags = st.multiselect("Tags", store.all_tags(), placeholder="any tags", key="runs_tags", persist_state=KEEP)
        archived = st.toggle("Archived", key="runs_archived", help="Show the archived runs instead of the others.",
                             persist_state=KEEP)
    runs_view(statuses, label_modes, text, tags, archived)


# -- compare ---------------------------------------------------------------------------------
@st.fragment(run_every=common.LIVE_REFRESH_S)
def compare(run_ids: list, smoothing: float, splits: list) -> None:
    common.recheck_live_runs()  # a run whose trainer died is shown interrupted here too
    curves = views.smooth_curves(views.curves(store, run_ids), smoothing)
    if curves.empty:
        st.info("None of these runs has finished an epoch yet.")
        return
    st.altair_chart(charts.compare_chart(curves, tuple(splits)))


def compare_section() -> None:
    options = views.run_options(store.list_runs())
    # Driven through session state: the default is set once, and the person's choice is kept
    # (less any run deleted meanwhile) however the store changes.
    if COMPARE_PICK not in st.session_state:
        st.session_state[COMPARE_PICK] = views.compare_default(store)
    elif any(i not in options for i in st.session_state[COMPARE_PICK]):
        st.session_state[COMPARE_PICK] = [i for i in st.session_state[COMPARE_PICK] if i in options]
    chosen = st.multiselect("Runs to compare", list(options), format_func=options.get, key=COMPARE_PICK,
                            persist_state=KEEP)
    left, right = st.columns([3, 1])
    with left:
        smoothing = st.slider("Smoothing", 0.0, views.MAX_SMOOTHING, 0.0, 0.01, key="smoothing",
                              help="Exponential moving average as in TensorBoard; faint lines are the raw values.",
                              persist_state=KEEP)
    with right:
        splits = st.pills("Show", ["test", "train"], selection_mode="multi", default=["test", "train"], key="splits",
                          persist_state=KEEP)
    # if/else, not st.stop(): a stop here would end the whole page script, not just this tab.
    if not chosen or not splits:
        st.info("Pick at least one run and one of test/train to compare.")
    else:
        compare(chosen, smoothing, splits)
    if chosen:
        st.markdown("**Settings**")
        only_differences = st.toggle("Only the settings that differ", value=True, key="only_differences",
                                     persist_state=KEEP)
        settings = views.settings_frame([r for r in (store.get_run(i) for i in chosen) if r is not None],
                                        only_differences)
        if settings.empty:
            st.info("These runs have the same settings." if only_differences else "No settings to show.")
        else:
            st.dataframe(settings, hide_index=True, width="stretch")


if runs_tab.open:
    with runs_tab:
        runs_section()
if compare_tab.open:
    with compare_tab:
        compare_section()
