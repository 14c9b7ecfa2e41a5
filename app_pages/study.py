"""Study: the study this dashboard grows from, queued as one suite, with its figures beside ours."""
import streamlit as st

from lsc_core import charts, estimates
from lsc_core import study as lsc_study
from lsc_core.store import ACTIVE_STATES
from app_pages import common

st.title("The study, replayed")
st.caption(lsc_study.description())
store = common.store()
PENDING = "study_pending"  # a submitted study waiting for confirmation: ((scale, limit), estimate, reasons)
NOTICE = "study_notice"  # what the last Queue did, shown once

# -- inputs -----------------------------------------------------------------------------------
with st.form("study_form", enter_to_submit=False):  # Enter in a field must not queue the study
    left, right = st.columns(2)
    scale = left.number_input("Epochs scale", min_value=0.01, max_value=2.0, value=1.0, step=0.1,
                              help="Multiplies every study epoch count (each run keeps at least 1 epoch).")
    limit = right.number_input("Training images per run (0 = all 50,000)", min_value=0, max_value=50_000,
                               value=0, step=500)
    queue = st.form_submit_button("Queue the study", type="primary")

# -- call ---------------------------------------------------------------------------------------
def queue_study(choice: tuple[float, int | None]) -> None:
    """Queue the study at (epochs scale, limit); the same scale and limit again reuse the suite."""
    suite_id, new = lsc_study.queue_suite(store, common.manager().submit, *choice)
    st.session_state[NOTICE] = ((st.success, f"Study suite {suite_id} queued; the background queue trains it run "
                                             "by run.") if new else
                                (st.info, f"The study at this scale and limit is already suite {suite_id}; "
                                          "showing it."))


if queue:
    choice = (float(scale), int(limit) or None)
    estimate = estimates.estimate(store, lsc_study.planned_configs(*choice), common.manager().device)
    reasons = estimates.confirm_reasons(estimate)  # a repeat is no risk: queue_suite reuses the suite
    if reasons and not lsc_study.existing_suite(store, *choice):
        st.session_state[PENDING] = (choice, estimate, reasons)  # long: wait for the person's word
    else:
        queue_study(choice)
common.ask_to_confirm(PENDING, queue_study)
notice = st.session_state.pop(NOTICE, None)
if notice:
    show, text = notice
    show(text)

suite = lsc_study.latest_suite(store)
if suite is None:
    st.info("No study suite yet: choose a scale (0.1 for a quick pass) and queue it.")
    st.stop()


# -- stop and remove (outside the live fragment: a removal changes which suite the page shows) --
def stop_suite(suite: dict) -> None:
    stopped = lsc_study.stop_suite(store, suite, common.manager().stop)
    st.session_state[NOTICE] = (st.info, f"Suite {suite['id']} stopped: {stopped} run(s) and trial(s) stopped; "
                                         "what they trained is kept.")


def remove_suite(suite: dict) -> None:
    lsc_study.remove_suite(store, suite, common.manager().stop)
    st.session_state[NOTICE] = (st.info, f"Suite {suite['id']} removed. Its runs stay in Runs, with their "
                                         "epochs and models.")


active = any(status in ACTIVE_STATES for status in lsc_study.progress(store, suite))
stop_col, remove_col = st.columns(2, width=420)
stop_col.button("Stop the suite", icon=":material/stop:", key="stop_suite", disabled=not active,
                on_click=stop_suite, args=(suite,),
                help="Drops its queued runs and search trials; the running one ends after its current batch. "
                     "Epochs and best models are kept.")
with remove_col.popover("Remove the suite", icon=":material/delete:"):
    st.caption("Stops it and takes it off this page; the suite before it (if any) shows instead. Its runs stay "
               "in Runs, with their epochs and models.")
    st.button(f"Remove suite {suite['id']}", type="primary", key="remove_suite", on_click=remove_suite,
              args=(suite,))


# -- render (live) -----------------------------------------------------------------------------
@st.fragment(run_every=common.LIVE_REFRESH_S * 2)
def show_suite(suite: dict) -> None:
    counts = lsc_study.progress(store, suite)
    st.markdown(f"**Suite {suite['id']}** · epochs x{suite['epochs_scale']} · "
                f"{suite['limit'] or 'all'} training images · "
                + " · ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    table = lsc_study.study_frame(store, suite)
    st.dataframe(table, hide_index=True, width="stretch", height=36 * (len(table) + 1) + 3,  # every line shown
                 placeholder=common.EMPTY_CELL,
                 column_config={"study accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "our accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "run": st.column_config.NumberColumn(format="%d")})
    st.altair_chart(charts.study_accuracy_chart(table))
    st.subheader("The study's comparisons")
    for title, _pairs in lsc_study.COMPARISONS:
        curves = lsc_study.comparison_curves(store, suite, title)
        if curves.empty:
            st.caption(f"{title}: waiting for a first epoch.")
            continue
        st.altair_chart(charts.study_comparison_chart(curves, title))


show_suite(suite)
