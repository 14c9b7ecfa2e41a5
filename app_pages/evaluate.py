"""Evaluate: where a run with a saved model errs on the test set (confusion, per-class accuracy,
other runs, mistakes)."""
import streamlit as st

from lsc_core import charts, compare, evaluate, explain, views
from lsc_core.artifacts import describe_model
from lsc_core.data import DataError
from lsc_core.markup import plain
from lsc_core.store import COMPLETED
from app_pages import common

IMAGE_PX = 72  # test images are 32x32: shown at about twice their size
CONFUSION_LEVELS = {"Fine (100 classes)": "fine", "Coarse, derived from fine (20 superclasses)": "coarse"}
# One lazy tab per section (common.KEEP_WHILE_CLOSED): a first view sends the headline, the heatmap
# and the per-class bars, not the galleries' images and the comparison's tables (whose browser code
# alone is 1.2 MB). The address names the open one unless it is the first (?section=...), so a
# reload keeps it.
SECTIONS = ("Confusion", "Against other runs", "Mistakes")
KEEP = common.KEEP_WHILE_CLOSED
# The first value of each choice, set once; afterwards its widget holds the person's choice.
FIRST_CHOICES = {"confusion_level": next(iter(CONFUSION_LEVELS)), "confusion_scale": "share of true class",
                 "evaluate_role": "true class"}
for key, first in FIRST_CHOICES.items():
    st.session_state.setdefault(key, first)


@st.cache_data(ttl=600, max_entries=4, show_spinner="Predicting the test set with this run's model (once)...")
def run_evaluation(db: str, run_id: int) -> evaluate.Evaluation:
    """Stored predictions -> Evaluation; `db` keys the cache to the store."""
    return evaluate.evaluate_run(common.store(), run_id, load_data=common.manager().load_data)


@st.cache_resource(max_entries=2, show_spinner="Loading the run's model for Grad-CAM...")
def run_explainer(db: str, run_id: int, model_path: str) -> explain.Explainer:
    """Grad-CAM of a run's saved model, once per server; ValueError when it has none or no conv layer."""
    return explain.explainer_for_run(common.store(), run_id)


def show_confusion(result: evaluate.Result, normalised: bool) -> None:
    chart = charts.confusion_heatmap(evaluate.confusion_frame(result), evaluate.class_names_in_order(result.label_mode),
                                     normalised=normalised)
    st.altair_chart(chart, width="content")


def show_images(pictures, captions) -> None:
    if pictures:
        st.image(pictures, caption=captions, width=IMAGE_PX)
    else:
        st.caption("No misclassified test images here.")


def show_headline(run, evaluation: evaluate.Evaluation, summary: dict) -> None:
    """Top-1, top-5 and chance (and, for a fine run, its derived coarse figures); flip averaging."""
    result, coarse = evaluation.result, evaluation.derived_coarse
    columns = st.columns(5 if coarse else 3)
    columns[0].metric("Top-1 test accuracy", f"{summary['top1']:.1%}")
    columns[1].metric("Top-5 test accuracy", f"{summary['top5']:.1%}")
    columns[2].metric("Random guess", f"{summary['baseline']:.0%}", help=f"1 in {len(result.names)} classes")
    if coarse:
        columns[3].metric("Coarse (from fine)", f"{summary['coarse_top1']:.1%}",
                          help="Fine probabilities summed within each superclass; random guess 5%")
        columns[4].metric("Errors in superclass", f"{summary['within_superclass']:.0%}",
                          help="Of the wrong fine predictions, the share that is another class of the right "
                               "superclass (random: 4 of 99, 4%)")
    st.caption(f"**{plain(run.name)}**: {summary['images']:,} test images; {plain(describe_model(run))}.")
    tta = common.store().get_run(run.id).tta_accuracy  # read fresh: measured on this page, or by --tta
    if tta is not None:
        st.metric("Top-1 with flip averaging (TTA)", f"{tta:.1%}", delta=f"{tta - summary['top1']:+.1%} vs plain",
                  help="Test-time augmentation: each test image's probabilities averaged with its mirror image's. "
                       "Reported beside the plain figure, which stays the run's result.")
    elif st.button("Measure with flip averaging (TTA)", icon=":material/flip:", key="measure_tta",
                   help="Predicts the test set again with each image and its mirror image, averaged; stored with "
                        "the run"):
        try:
            with st.spinner("Predicting the test set twice (images and mirror images)..."):
                evaluate.ensure_tta_accuracy(common.store(), run.id, load_data=common.manager().load_data)
        except (evaluate.EvaluationError, DataError) as exc:
            st.error(plain(exc))
        else:
            st.rerun()
    if run.status != COMPLETED:
        st.warning(f"This run is {run.status}: it ended before its last epoch, and its best epoch so far "
                   "is evaluated.", icon=":material/pause_circle:")


def show_confusion_section(evaluation: evaluate.Evaluation, summary: dict, normalised: bool) -> None:
    """The confusion heatmap, one level at a time, and each class's accuracy."""
    result, coarse = evaluation.result, evaluation.derived_coarse
    if coarse:
        # One matrix at a time, not tabs: drawing only the one asked for halves the section's view.
        level = st.segmented_control("Classes", list(CONFUSION_LEVELS), key="confusion_level", persist_state=KEEP,
                                     help="Fine classes are grouped by superclass: the 5x5 blocks on the diagonal "
                                          "are the superclasses.")
        show_confusion(coarse if CONFUSION_LEVELS.get(level) == "coarse" else result, normalised)
    else:
        show_confusion(result, normalised)

    st.subheader("Accuracy per class")
    best = ", ".join(f"{name} {acc:.0%}" for name, acc in summary["best"])
    worst = ", ".join(f"{name} {acc:.0%}" for name, acc in summary["worst"])
    st.markdown(f"**Best:** {best}  \n**Worst:** {worst}")
    st.altair_chart(charts.per_class_bars(evaluate.per_class_frame(result), result.baseline), width="stretch")


def show_comparison_section(runs: dict, run_id: int, evaluation: evaluate.Evaluation, normalised: bool) -> None:
    """This run against another (per-class differences, McNemar's test), an ensemble and calibration,
    all from stored predictions: nothing is retrained."""
    options = views.run_options(runs.values())
    others = {i: label for i, label in options.items() if i != run_id}
    if not others:
        st.caption("Train another run to compare with this one, average it into an ensemble, or set the "
                   "calibration of both side by side.")
        return
    if st.session_state.get("evaluate_other") not in others:
        st.session_state["evaluate_other"] = next(iter(others))
    other_id = st.selectbox("Compare with (run B)", list(others), key="evaluate_other", format_func=others.get,
                            persist_state=KEEP)
    try:
        other = run_evaluation(common.db_path(), other_id)
        levels = compare.levels(evaluation, other)
        if st.session_state.get("evaluate_compare_level") not in levels:
            st.session_state["evaluate_compare_level"] = levels[0]
        level = st.radio("Labels", levels, key="evaluate_compare_level", horizontal=True, persist_state=KEEP,
                         help="Coarse: a fine run's superclass is derived from its fine probabilities")
        comparison = compare.compare_runs(evaluation, other, level)
    except (evaluate.EvaluationError, DataError) as exc:
        st.error(plain(exc))
    else:
        left, middle, right = st.columns(3)
        left.metric(f"A: #{run_id}", f"{comparison.accuracy_a:.1%}")
        middle.metric(f"B: #{other_id}", f"{comparison.accuracy_b:.1%}",
                      delta=f"{comparison.accuracy_b - comparison.accuracy_a:+.1%}")
        right.metric("McNemar p-value", comparison.test.p_text,
                     help="The chance of a difference at least this large if the two runs were equally good, "
                          "from the test images exactly one of them gets right")
        st.markdown(comparison.test.describe())
        st.altair_chart(charts.class_difference_bars(comparison.per_class, f"A #{run_id}", f"B #{other_id}"),
                        width="content")
        with st.expander("Per-class table (p: McNemar's test on that class's images alone)"):
            st.dataframe(comparison.per_class, hide_index=True)
    named_results = show_ensemble(runs, run_id, other_id, options, normalised)
    st.markdown("**Calibration**: is a run as often right as it is confident?")
    if named_results:
        st.altair_chart(charts.reliability_diagram(compare.reliability_frame(named_results)), width="content")
        st.caption("Each point: the test images whose top probability fell in one bin. On the dashed diagonal a "
                   "run is calibrated; below it, over-confident. ECE: the image-weighted mean gap.")


def show_ensemble(runs: dict, run_id: int, other_id: int, options: dict, normalised: bool) -> dict:
    """The ensemble of the runs picked (their test-set probabilities averaged); returns the results
    to calibrate, by label: run A, run B, the members and the ensemble."""
    st.markdown("**Ensemble**: the average of the runs' test-set probabilities")
    mode = runs[run_id].label_mode
    same_mode = {i: label for i, label in options.items() if runs[i].label_mode == mode}
    members_key = f"evaluate_ensemble_{run_id}"
    if members_key not in st.session_state:
        st.session_state[members_key] = compare.default_members(run_id, other_id, list(same_mode))
    members = st.multiselect(f"Runs averaged ({mode} runs)", list(same_mode), key=members_key,
                             format_func=same_mode.get, persist_state=KEEP)
    calibrated = {options[i]: i for i in dict.fromkeys([run_id, other_id, *members])}
    named_results = {}
    try:
        named_results = {label: run_evaluation(common.db_path(), i).result for label, i in calibrated.items()}
        together = compare.ensemble([run_evaluation(common.db_path(), i) for i in members]) \
            if len(members) >= 2 else None
    except (evaluate.EvaluationError, DataError) as exc:  # the runs read so far are still calibrated
        st.error(plain(exc))
        return named_results
    if together is None:
        st.caption(f"Pick two or more {mode} runs to average.")
        return named_results
    member_top1 = [named_results[options[i]].top1 for i in members]
    columns = st.columns(4)
    columns[0].metric("Ensemble top-1", f"{together.result.top1:.1%}")
    columns[1].metric("Ensemble top-5", f"{together.result.top5:.1%}")
    columns[2].metric("Best run alone", f"{max(member_top1):.1%}")
    columns[3].metric("Weakest run alone", f"{min(member_top1):.1%}")
    st.caption("Confusion of the ensemble")
    show_confusion(together.result, normalised)
    return {**named_results, f"ensemble of {len(members)}": together.result}


def show_mistakes_section(run, evaluation: evaluate.Evaluation, normalised: bool) -> None:
    """Test images it got wrong: the most confused pairs, one class's, one superclass's; with
    Grad-CAM on request (needs the test images and, for Grad-CAM, the model)."""
    result, coarse = evaluation.result, evaluation.derived_coarse
    data = common.data()
    looked = st.toggle("Show what it looked at (Grad-CAM for the true and the predicted class)",
                       key="evaluate_gradcam", persist_state=KEEP)
    explainer = None
    if looked:
        try:
            explainer = run_explainer(common.db_path(), run.id, run.model_path)
        except ValueError as exc:
            st.info(f"No heatmaps for this run: {plain(exc)}")

    def show_gallery(indices) -> None:
        """Test images at `indices`; with Grad-CAM on, each beside what it looked at for both classes."""
        if explainer is None:
            show_images(*evaluate.gallery(result, data.x_test, indices))
        else:
            show_images(*explain.explain_gallery(explainer, result, data.x_test, indices))

    st.subheader("Most confused pairs")
    try:
        pairs = evaluate.confused_pair_galleries(result, data.x_test)
    except evaluate.EvaluationError as exc:
        st.warning(plain(exc))
        return
    for pair in pairs:
        st.markdown(pair["title"])
        show_gallery(pair["indices"])

    st.subheader("Misclassified images of one class")
    left, right = st.columns([3, 2])
    chosen = left.selectbox("Class", range(len(result.names)), format_func=lambda c: result.names[c],
                            key="evaluate_class", persist_state=KEEP)
    role = right.segmented_control("It is the", ["true class", "predicted class"], key="evaluate_role",
                                   persist_state=KEEP)
    indices = (evaluate.misclassified(result, true_class=chosen, limit=40) if role != "predicted class"
               else evaluate.misclassified(result, predicted_class=chosen, limit=40))
    show_gallery(indices)

    if coarse:
        st.subheader("Inside one superclass")
        superclass = st.selectbox("Superclass", range(len(coarse.names)), format_func=lambda c: coarse.names[c],
                                  key="evaluate_superclass", persist_state=KEEP)
        block = evaluate.superclass_confusion_frame(result, superclass)
        st.altair_chart(charts.confusion_heatmap(block, evaluate.superclass_names(superclass),
                                                 normalised=normalised), width="content")
        st.caption("Shares are of all the true class's test images: what a row lacks from 100% went to other "
                   "superclasses. Below: its images taken for another class of the same superclass.")
        show_gallery(evaluate.superclass_mistakes(result, superclass))


# -- inputs ----------------------------------------------------------------------------------
st.title("Evaluate")
runs = {run.id: run for run in evaluate.evaluable_runs(common.store())}
if not runs:
    st.info("No run with a saved model yet (completed, or stopped after an epoch). Train one on Build & "
            "Train, or with "
            "`python -m lsc_core train`.")
    st.stop()
run_id = common.sticky_select("Run", views.run_options(runs.values()), key="evaluate_run", url_key="run",
                              shared_key=common.SELECTED_RUN)
if runs[run_id].model_problem:  # its stored predictions can still be shown; the model file is never read
    st.warning(plain(runs[run_id].model_problem), icon=":material/block:")

# -- guard and call --------------------------------------------------------------------------
try:
    evaluation = run_evaluation(common.db_path(), run_id)
except (evaluate.EvaluationError, DataError) as exc:
    st.error(plain(exc))
    st.stop()
summary = evaluate.summary(evaluation)

# -- render ----------------------------------------------------------------------------------
show_headline(runs[run_id], evaluation, summary)
# Above the tabs: it sets every heatmap of the page (a widget in a closed tab would lose its value).
scale = st.segmented_control("Heatmap cells show", ["share of true class", "image count"], key="confusion_scale",
                             help="Share: each row sums to 100%, so classes compare whatever their test count")
normalised = scale != "image count"
confusion, against, mistakes = st.tabs(SECTIONS, key="section", bind="query-params")
if confusion.open:
    with confusion:
        show_confusion_section(evaluation, summary, normalised)
if against.open:
    with against:
        show_comparison_section(runs, run_id, evaluation, normalised)
if mistakes.open:
    with mistakes:
        show_mistakes_section(runs[run_id], evaluation, normalised)
