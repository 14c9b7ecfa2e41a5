"""Home: what is training now, what waits in the queue, the best results against the study's."""
import streamlit as st

from lsc_core import views
from lsc_core.markup import plain
from lsc_core.store import COMPLETED
from lsc_core.study import STUDY_BEST
from app_pages import common

st.title("LSC dashboard")
st.caption("CNNs on CIFAR-100: coarse (20 superclasses) and fine (100 classes) labels.")


def running_card(live: views.LiveRun) -> None:
    run, progress = live.run, live.progress
    left, right = st.columns([5, 1], vertical_alignment="center")
    with left:
        st.markdown(f"**{plain(run.name)}** · {run.label_mode} labels")
        st.progress(progress.fraction, text=progress.describe())
    with right:
        common.stop_button(run, key=f"stop-{run.id}")
        if st.button("Open", key=f"open-{run.id}", icon=":material/open_in_new:"):
            common.select_run(run.id)


def best_metric(mode: str, run: dict | None) -> None:
    study = STUDY_BEST[mode]
    label = f"Best {mode} test accuracy"
    if run is None:
        st.metric(label, "none yet", help=f"The study's best: {study:.3f}. No {mode} run with a result so far.")
        return
    st.metric(label, f"{run.best_val_accuracy:.3f}",
              delta=f"{run.best_val_accuracy - study:+.3f} vs study {study:.3f}")
    stopped = "" if run.status == COMPLETED else f" ({run.status} before its last epoch)"
    st.caption(f"{plain(run.name)}, epoch {run.best_epoch}{stopped}")


@st.fragment(run_every=common.LIVE_REFRESH_S)
def live() -> None:
    store = common.store()
    common.recheck_live_runs()
    st.subheader("Training now")
    running = views.running_now(store)
    if not running:
        st.info("Nothing is training. Launch a run from Build & Train or `python -m lsc_core train`.")
    for live_run in running:
        running_card(live_run)
    waiting = views.queued(store)
    if len(waiting):
        st.markdown(f"**Queued** ({len(waiting)})")
        st.dataframe(waiting, hide_index=True, width="stretch", placeholder=common.EMPTY_CELL)

    st.subheader("Best so far")
    best = views.best_runs(store)
    columns = st.columns(len(best))
    for column, (mode, run) in zip(columns, best.items()):
        with column:
            best_metric(mode, run)


live()

st.subheader("Pages")
others = [page for page in common.PAGES if page.path != common.HOME]
columns = st.columns(len(others) // 2 + 1)
for position, page in enumerate(others):
    with columns[position % len(columns)]:
        st.page_link(page.path, label=page.title, icon=page.icon)
        st.caption(page.what)
