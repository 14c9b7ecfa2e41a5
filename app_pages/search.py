"""Search: a space over a base network, a strategy and a budget; trials fill in live."""
import streamlit as st

from lsc_core import charts, estimates
from lsc_core import search as lsc_search
from lsc_core.config import LABEL_MODES, OPTIMIZERS, PRESETS, ConfigError, preset
from lsc_core.markup import plain
from app_pages import common

SELECTED_SEARCH = "selected_search"  # search id this page shows
SEARCH_PICK = "search_pick"  # the key of the picker of searches
PENDING = "search_pending"  # a submitted search waiting for confirmation: (spec, estimate, reasons)
NOTICE = "search_notice"  # what the last launch queued, shown once
MAX_NAME_CHARS = 80  # a search's name is a line in a picker

st.title("Hyperparameter search")
st.caption("Each trial is an ordinary run (named search*N*-trial*M*) trained by the background queue. "
           "The default space is the study's: the filters of seed-part2's four convolutions and its dense units.")
store = common.store()  # the job manager resumed unfinished searches when it started

# -- inputs -----------------------------------------------------------------------------------
st.session_state.setdefault("search_base", "seed-part2")  # the study's searched network
base_name = st.selectbox("Base network", list(PRESETS), key="search_base",
                         help="The layout every trial starts from; the form below lists its searchable layers.")
base = preset(base_name)
with st.form("search_form", enter_to_submit=False):  # Enter in a field must not queue a search
    st.markdown("**Values to try per layer** (one value fixes the layer, several are searched)")
    columns = st.columns(3)
    layer_values = {}
    for number, choice in enumerate(lsc_search.searchable_layers(base)):
        with columns[number % 3]:
            layer_values[choice.position] = st.multiselect(choice.label, choice.options, default=choice.default,
                                                           key=f"layer_{base_name}_{choice.position}")
    left, middle, right = st.columns(3)
    batch_sizes = left.multiselect("Batch sizes", lsc_search.BATCH_SIZES, default=[64], key="search_batch_sizes")
    optimizers = middle.multiselect("Optimizers", OPTIMIZERS, default=["adam"], key="search_optimizers")
    search_lr = right.checkbox("Search the learning rate (log-uniform)", value=False)
    lr_low = right.number_input("lowest learning rate", value=1e-4, min_value=1e-6, max_value=1.0, format="%.0e")
    lr_high = right.number_input("highest learning rate", value=1e-2, min_value=1e-6, max_value=1.0, format="%.0e")
    st.markdown("**Strategy and budget**")
    a, b, c, d, e, f = st.columns(6)
    strategy = a.radio("Strategy", lsc_search.STRATEGIES, horizontal=True, key="search_strategy")
    trials = b.number_input("Trials", min_value=1, max_value=500, value=10,
                            help="Random: trials drawn. Grid: at most this many grid points, in order.")
    epochs = c.number_input("Epochs per trial", min_value=1, max_value=200, value=5)
    labels = d.radio("Labels", LABEL_MODES, horizontal=True, key="search_labels")
    limit = e.number_input("Training images (0 = all 50,000)", min_value=0, max_value=50_000, value=0, step=500)
    seed = f.number_input("Seed of the draw", min_value=0, value=0)
    name = st.text_input("Search name", max_chars=MAX_NAME_CHARS, key="search_name",
                         placeholder="empty: from the strategy, network, labels and what is varied",
                         help="How the search is listed below and in its trials' runs.")
    launched = st.form_submit_button("Launch search", type="primary")

# -- guard and call ------------------------------------------------------------------------
def launch(spec: lsc_search.SearchSpec, estimate: estimates.Estimate | None) -> None:
    """Queue the search; the picker below opens on it."""
    # The name field's value (kept while the form is on screen, also through a confirmation).
    search_id = lsc_search.launch_search(store, spec, st.session_state.get("search_name", "").strip() or None)
    st.session_state[SEARCH_PICK] = st.session_state[SELECTED_SEARCH] = search_id
    st.session_state.pop(PENDING, None)
    work = f": {estimate.describe()}" if estimate is not None else ""
    st.session_state[NOTICE] = f"Search {search_id} queued{work}."


if launched:
    try:
        space = lsc_search.space_from_form(base, layer_values, batch_sizes, optimizers,
                                           (lr_low, lr_high) if search_lr else None)
        spec = lsc_search.SearchSpec(space, strategy=strategy, trials=int(trials), epochs=int(epochs),
                                     label_mode=labels, limit=int(limit) or None, seed=int(seed))
        estimate = estimates.estimate(store, lsc_search.plan_trials(spec, 0), common.manager().device)
        twin = lsc_search.running_twin(store, spec)
        reasons = estimates.confirm_reasons(estimate, twin and f"search {twin['id']} with exactly these settings "
                                                           "is still running")
        if reasons:  # long or repeated: wait for the person's word (below)
            st.session_state[PENDING] = (spec, estimate, reasons)
        else:
            launch(spec, estimate)
    except ConfigError as exc:
        st.error(plain(exc))
common.ask_to_confirm(PENDING, lambda pending: launch(pending, None))
notice = st.session_state.pop(NOTICE, None)
if notice:
    st.success(notice)

searches = lsc_search.summaries(store)
if not searches:
    st.info("No search yet: choose the values above and launch one.")
    st.stop()

search_id = common.sticky_select("Search", lsc_search.search_options(searches), key=SEARCH_PICK, url_key="search",
                                 shared_key=SELECTED_SEARCH)


# -- render (live) -----------------------------------------------------------------------------
@st.fragment(run_every=common.LIVE_REFRESH_S)
def show_search(search_id: int) -> None:
    info = lsc_search.summary(store, search_id)
    spec = lsc_search.get_spec(store, search_id)
    results = lsc_search.results_frame(store, search_id)
    head, stop = st.columns([4, 1])
    head.markdown(f"**Search {search_id}** · {info['status']} · {info['strategy']} · {info['labels']} labels · "
                  f"{info['completed']}/{info['planned']} trials completed · {info['epochs']} epoch(s) each")
    if info["status"] == lsc_search.SEARCH_RUNNING and stop.button("Stop search", key=f"stop_{search_id}"):
        lsc_search.stop_search(store, search_id, common.manager().stop)
        st.rerun()
    st.progress(info["completed"] / max(1, info["planned"]))
    st.dataframe(results, hide_index=True, width="stretch", placeholder=common.EMPTY_CELL,
                 column_config={"best test accuracy": st.column_config.NumberColumn(format="%.4f"),
                                "params": common.PARAMS_COLUMN})
    best = lsc_search.best_trial(store, search_id)
    if best is None:
        st.info("Results appear here as trials finish their first epoch.")
        return
    searched = [p.name for p in spec.space.params]
    st.altair_chart(charts.search_scatter_chart(results, searched))
    # Not in tabs: a chart in a hidden tab is drawn at the tab's zero width.
    st.caption("All settings at once: one line per trial, coloured by its best test accuracy.")
    st.altair_chart(charts.search_parallel_chart(results, searched))
    st.markdown(f"**Best so far:** {plain(best.name)} (run {best.id}), test accuracy "
                f"{best.best_val_accuracy:.4f} at epoch {best.best_epoch}")
    st.json(lsc_search.trial_config_dict(best), expanded=False)
    if st.button("Open the best configuration in Build & Train", key=f"open_{search_id}"):
        st.session_state[common.CLONE_CONFIG] = lsc_search.trial_config_dict(best)
        st.switch_page(common.BUILD)


show_search(search_id)
