"""Predict: upload images, see what a trained run's network sees and which labels it gives."""
import streamlit as st

from lsc_core import charts, explain, predict, views
from lsc_core.artifacts import describe_model
from lsc_core.evaluate import evaluable_runs
from lsc_core.markup import plain
from app_pages import common

PICK = "predict_runs"  # the key of the run picker

HEAT_PX = 160  # each heatmap overlay's width on the page


@st.cache_resource(max_entries=4, show_spinner="Loading the run's model...")
def run_model(db: str, run_id: int, model_path: str, stamp: float | None = None):
    """(run, keras model), loaded and run once (warm) per server for each run's saved file;
    `stamp` (the file's modification time) loads it again when the run saved a newer one."""
    return predict.load_run_model(common.store(), run_id, warm=True)


def chosen_model(run_id: int):
    """The cached (run, model) of a chosen run, keyed by its model file and that file's time."""
    run = runs[run_id]
    return run_model(common.db_path(), run_id, run.model_path, predict.model_stamp(run))


@st.cache_resource(max_entries=4, show_spinner=False)
def run_explainer(db: str, run_id: int, model_path: str, stamp: float | None = None) -> explain.Explainer:
    """Grad-CAM of a run's model, once per server; NoFeatureMap for a network without a conv layer."""
    return explain.Explainer(chosen_model(run_id)[1])


def show_heat(explained: explain.UploadExplanation) -> None:
    st.image([explained.on_upload, explained.on_input], width=HEAT_PX,
             caption=["on the image (the centred square it sees)", "on the 32x32 input"])


def show_explanations(upload: predict.Upload, index: int, run: dict) -> None:
    """Where the run's network looked: for its top class, and for a class the person picks."""
    try:
        explainer = run_explainer(common.db_path(), run.id, run.model_path, predict.model_stamp(run))
    except explain.NoFeatureMap as exc:
        st.caption(f"No heatmap: {plain(exc)}.")
        return
    top = explain.explain_upload(explainer, upload.image, run.label_mode)
    choices = explain.class_choices(top, run.label_mode)
    key = f"predict_explain_{run.id}_{index}"
    if st.session_state.get(key) not in choices:
        st.session_state[key] = list(choices)[1]  # the runner-up: what else it might have been
    left, right = st.columns(2)
    with left:
        st.markdown(f"Where it looked for **{top.class_name}** (top class, {top.probability:.1%})")
        show_heat(top)
    with right:
        picked = st.selectbox("Where it looks for", list(choices), key=key, format_func=choices.get,
                              help="Grad-CAM: red where the evidence for that class is, from the last "
                                   f"convolutional feature map ({top.layer.describe()})")
        show_heat(explain.explain_upload(explainer, upload.image, run.label_mode, picked))


def show_upload(upload: predict.Upload, index: int, results: list) -> None:
    """One image: as uploaded, as the network sees it, then each run's labels and where it looked."""
    image = upload.image
    st.markdown(f"**{plain(upload.name)}** :small[{plain(image.describe())}]")
    columns = st.columns([2, 1, 3 * max(1, len(results))])
    columns[0].image(image.preview, caption="as uploaded", width="stretch")
    columns[1].image(predict.network_view(image.pixels), caption="32x32 input the network sees", width="stretch")
    with columns[2]:
        for run, prediction in results:
            how = "coarse summed from its fine probabilities" if prediction.coarse_derived else "coarse run"
            st.caption(f"{plain(views.run_label(run))}: {how}")
            st.altair_chart(charts.probability_bars(predict.prediction_frame(prediction)), width="content")
    for run, _ in results:
        with st.container(border=True):
            st.caption(f"{plain(views.run_label(run))}: where it looked (Grad-CAM)")
            show_explanations(upload, index, run)


# -- inputs ----------------------------------------------------------------------------------
st.title("Predict")
store = common.store()
runs = {run.id: run for run in evaluable_runs(store)}
if not runs:
    st.info("No run with a saved model yet (completed, or stopped after an epoch). Train one on Build & "
            "Train, or with "
            "`python -m lsc_core train`.")
    st.stop()
# Driven through session state: the best runs are the first choice, then the person's is kept.
if PICK not in st.session_state:
    st.session_state[PICK] = [run.id for run in views.best_of(list(runs.values()), need_model=True).values()]
elif any(i not in runs for i in st.session_state[PICK]):  # a run deleted meanwhile
    st.session_state[PICK] = [i for i in st.session_state[PICK] if i in runs]
chosen = st.multiselect("Runs", list(runs), key=PICK, format_func=lambda i: views.run_label(runs[i]),
                        help="Default: the best completed run of each label mode. A fine run also gives "
                             "coarse labels, by summing its fine probabilities within each superclass.")
tta = st.toggle("Flip averaging (test-time augmentation)", key="predict_tta",
                help="Each image's probabilities averaged with its mirror image's; twice the work")
files = st.file_uploader("Images", type=list(predict.UPLOAD_TYPES), accept_multiple_files=True,
                         help=f"Any size up to {predict.MAX_PIXELS // 1_000_000} megapixels; transparency is "
                              "shown on white, animations use their first frame. The network sees a centred "
                              "square, shrunk to 32x32.")
# Off by default: the browser asks for the camera as soon as the widget shows.
photo = (st.camera_input("Photo", help="Taken in your browser; it goes the same way as an upload.",
                         key="predict_camera")
         if st.toggle("Take a photo with the camera", key="predict_camera_on") else None)
images = list(files or []) + ([photo] if photo is not None else [])

# -- guard -----------------------------------------------------------------------------------
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
# The chosen runs' models load (and run once) as the page opens, not after the upload: the
# first result then follows an upload by one forward pass. Each chosen run's model is named
# (its epoch) or, when it cannot load, reported in one line.
models = {}
for run_id in chosen:
    try:
        models[run_id] = chosen_model(run_id)
    except ValueError as exc:
        st.error(plain(exc))
    else:
        st.caption(f"{plain(views.run_label(runs[run_id]))}: {plain(describe_model(runs[run_id]))}")
if not images:
    st.info("Upload one or more images (PNG, JPEG, WebP, BMP, GIF, TIFF), or take a photo with the camera.")
    st.stop()

# -- call ------------------------------------------------------------------------------------
uploads = [predict.prepare_upload(f.name, f.getvalue()) for f in images]
predictions = {}
for run_id, (run, model) in models.items():
    predictions[run_id] = (run, predict.classify(model, run.label_mode, uploads, tta=tta))

# -- render ----------------------------------------------------------------------------------
for index, upload in enumerate(uploads):
    st.divider()
    if upload.error:
        st.error(plain(upload.error))
        continue
    show_upload(upload, index, [(run, ranked[index]) for run, ranked in predictions.values()])
