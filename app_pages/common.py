"""What every page shares: the job manager and data of this server process, the sidebar.

Not a page itself (app.py lists the pages). Every session of one server shares one job
manager per store (lsc_core.jobs.manager_for): one worker thread and one copy of the data.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from lsc_core.data import DataError, resolve_data_path
from lsc_core import estimates, views
from lsc_core.jobs import JobManager, dashboard_manager
from lsc_core.markup import plain
from lsc_core.store import ACTIVE_STATES, default_db_path

@dataclass(frozen=True)
class PageInfo:
    """One page of the dashboard: app.py's navigation and Home's page list both read PAGES."""

    path: str
    title: str
    icon: str
    section: str  # the navigation group it is listed under
    what: str  # one line for Home's page list


PAGES = (
    PageInfo("app_pages/home.py", "Home", ":material/home:", "Dashboard", "what trains now, the best results"),
    PageInfo("app_pages/data_explorer.py", "Data", ":material/photo_library:", "Dashboard",
             "CIFAR-100 images and classes"),
    PageInfo("app_pages/build.py", "Build & Train", ":material/construction:", "Dashboard",
             "design a network and launch it"),
    PageInfo("app_pages/runs.py", "Runs", ":material/monitoring:", "Dashboard", "live curves, compare, clone"),
    PageInfo("app_pages/evaluate.py", "Evaluate", ":material/grid_on:", "Analysis", "confusion and per-class accuracy"),
    PageInfo("app_pages/predict.py", "Predict", ":material/image_search:", "Analysis", "classify an uploaded photo"),
    PageInfo("app_pages/search.py", "Search", ":material/tune:", "Experiments", "hyperparameter search"),
    PageInfo("app_pages/study.py", "Study", ":material/science:", "Experiments", "replay the original study"),
)
HOME, DATA, BUILD, RUNS, EVALUATE, PREDICT, SEARCH, STUDY = (page.path for page in PAGES)

# Session-state keys by which pages hand work to each other.
SELECTED_RUN = "selected_run"  # run id the Runs/Evaluate pages open on
CLONE_CONFIG = "clone_config"  # a RunConfig dict the Build page starts from
LIVE_REFRESH_S = 2.0  # how often live views re-read the store
STOP_FOLLOW_S = 0.5  # while a run is stopping, how often its view looks for the end
# A page's sections are lazy tabs (st.tabs(..., bind="query-params")): only the open one runs, so a
# closed section costs no drawing and no live refresh. Its widgets keep their values while it is
# closed with persist_state=KEEP_WHILE_CLOSED (the page's session, not the page run).
KEEP_WHILE_CLOSED = "page"
# Tables: a missing value reads as a dash (Streamlit's default is the word "None"), and parameter
# counts get a fixed width that shows "25,000,000" in full (an automatic width cut the leading digit).
EMPTY_CELL = "—"
PARAMS_COLUMN = st.column_config.NumberColumn("params", format="localized", width=100)


def keep_keras_state_between_reruns() -> None:
    """Leave out the Keras clean-up Streamlit does at the end of every script run.

    Streamlit ends each run, every fragment's refresh included, with
    keras.backend.clear_session() (script_runner._clean_problem_modules): a full garbage
    collection (0.2 s holding the GIL, measured with a trained model loaded), TensorFlow's
    kernel cache cleared and Keras's global settings reset, beside the worker that trains in
    this process. A Stop's follow-up, refreshed every STOP_FOLLOW_S, so starved the trainer
    that its run ended 5-7 s after the click; every live refresh slowed training; and a
    mixed-precision policy could be reset under a model being built. The pages keep no Keras
    state of their own to clear (their models live in caches on purpose), so only
    matplotlib's part of the clean-up is kept. Idempotent: app.py calls it on every run.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):  # gone in another Streamlit: nothing to leave out
        script_runner._clean_problem_modules = _close_matplotlib_figures


def _close_matplotlib_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def db_path() -> str:
    return str(default_db_path().resolve())


def data_path() -> str | None:
    path = resolve_data_path()
    return str(path) if path else None


def manager() -> JobManager:
    """The job manager of this server process for $LSC_DB (started here at the first page view
    unless serve.py started it with the server)."""
    return dashboard_manager()


def store():
    return manager().store


def data():
    """The data set, loaded once per process; a clear message and st.stop() when it cannot be."""
    try:
        with st.spinner("Loading CIFAR-100 (once per server)..."):
            return manager().load_data()
    except DataError as exc:
        st.error(plain(exc))
        st.stop()


def select_run(run_id: int, page: str = RUNS) -> None:
    """Open `page` on a run; the address bar names it (?run=ID), so the view can be reloaded or shared."""
    st.session_state[SELECTED_RUN] = int(run_id)
    st.switch_page(page, query_params={"run": str(int(run_id))})


def sticky_select(label: str, options: dict[int, str], key: str, url_key: str, shared_key: str, **kwargs) -> int:
    """A selectbox over ids that follows the person's first click and survives reruns.

    Driven through st.session_state[key], never an index= recomputed on each rerun (which
    makes Streamlit see a new widget and drop the choice). It opens on the id in the
    address bar (?url_key=ID), else the one another page selected (st.session_state
    [shared_key]), else the first; the choice is written back to both, so a reload or a
    shared link opens the same view.
    """
    ids = list(options)
    if st.session_state.get(key) not in ids:
        st.session_state[key] = views.first_present(ids, st.query_params.get(url_key),
                                                    st.session_state.get(shared_key))
    chosen = st.selectbox(label, ids, key=key, format_func=options.get, **kwargs)
    st.session_state[shared_key] = chosen
    st.query_params[url_key] = str(chosen)
    return chosen


def launch_summary(estimate: estimates.Estimate, reasons: list[str], confirm_key: str) -> bool:
    """What a launch button will queue and, where estimates.confirm_reasons gives reasons, a box
    the person must tick first (keyed by what it confirms, so a changed form asks again).
    True when the launch may go."""
    st.caption(f"Launch queues {estimate.describe()}.")
    if not reasons:
        return True
    st.warning(f"Confirm first: {'; '.join(reasons)}.", icon=":material/warning:")
    return st.checkbox("Queue it anyway", key=confirm_key)


def ask_to_confirm(pending_key: str, launch: Callable[[Any], None]) -> None:
    """A form's launch that needs confirmation waits in st.session_state[pending_key] as
    (what, estimate, reasons): show why, with buttons to queue it anyway (launch(what)) or drop it."""
    pending = st.session_state.get(pending_key)
    if pending is None:
        return
    _, estimate, reasons = pending
    st.warning(f"This queues {estimate.describe()}. Confirm first: {'; '.join(reasons)}.", icon=":material/warning:")
    go, cancel = st.columns(2)
    go.button("Queue it anyway", key=f"{pending_key}-go", type="primary", on_click=_launch_pending,
              args=(pending_key, launch))
    cancel.button("Cancel", key=f"{pending_key}-cancel", on_click=st.session_state.pop, args=(pending_key, None))


def _launch_pending(pending_key: str, launch: Callable[[Any], None]) -> None:
    what = st.session_state.pop(pending_key)[0]
    launch(what)


def stop_button(run: dict, key: str) -> None:
    """Stop, for a queued or running run, in a fragment of its own (`stop_control`): the click
    reruns only that, not the live view around it (seconds on a loaded machine), so the
    button says "Stopping…" at once; `follow_stop` then shows the run's final status in its
    place within STOP_FOLLOW_S of the end (the trainer reads the stop every 0.1 s)."""
    stop_control(run.id, key)


@st.fragment
def stop_control(run_id: int, key: str) -> None:
    """The Stop button of a run not asked to stop yet, else `follow_stop`; the run read afresh,
    as a click reruns this fragment alone."""
    run = store().get_run(run_id)
    if run is not None and run.status in ACTIVE_STATES and not run.stop_requested:
        st.button("Stop", icon=":material/stop:", key=key, on_click=manager().stop, args=(run_id,),
                  help="Ends the run after its current batch; its epochs and best model are kept.")
    else:
        follow_stop(run_id, key)


def recheck_live_runs() -> None:
    """Runs whose trainer has died (a killed command line, say) become interrupted now, while a
    page watches, not at the next server start: the store's liveness verdict, a cheap query."""
    store().mark_dead_runs_interrupted()


@st.fragment(run_every=STOP_FOLLOW_S)
def follow_stop(run_id: int, key: str) -> None:
    """While a run is stopping, a disabled "Stopping…" button; as soon as the run has ended (or its
    trainer died), its final status line in the button's place, so the end shows within
    STOP_FOLLOW_S. The live view around it catches up at its next refresh (LIVE_REFRESH_S):
    a rerun of the whole page from here took seconds on a loaded machine."""
    recheck_live_runs()
    run = store().get_run(run_id)
    if run is not None and run.status in ACTIVE_STATES:
        st.button("Stopping…", icon=":material/stop:", key=key, disabled=True)
    elif run is not None:
        st.caption(views.status_line(run))


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Store: `{db_path()}`")
        st.caption(f"Data: `{data_path() or 'Keras cache / download'}`")
        device = manager().device
        if device:
            st.caption(f"Device: {plain(device)}")
        else:
            device_line()


@st.fragment(run_every=1.0)
def device_line() -> None:
    """The device, once the worker has found it (it imports TensorFlow in the background at server
    start, seconds): until then a line that says so and updates itself, never a stale placeholder.
    Called only while the device is unknown, so it stops refreshing at the page's next run."""
    device = manager().device
    st.caption(f"Device: {plain(device)}" if device else "Device: TensorFlow is starting (seconds)…")
