"""Predict: upload images, see what a trained run's network sees and which labels it gives."""
import streamlit as st

from lsc_core import charts, predict, views
from lsc_core.evaluate import evaluable_runs
from lsc_core.markup import plain
from app_pages import common


@st.cache_resource(max_entries=4, show_spinner="Loading the run's model...")
def run_model(db: str, run_id: int, model_path: str):
    """(run, keras model), once per server for each run's saved file."""
    return predict.load_run_model(common.store(), run_id)


def show_upload(upload: predict.Upload, results: list) -> None:
    """One image: as uploaded, as the network sees it, then each run's labels."""
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


# -- inputs ----------------------------------------------------------------------------------
st.title("Predict")
store = common.store()
runs = {run["id"]: run for run in evaluable_runs(store)}
if not runs:
    st.info("No run with a saved model yet (completed, or stopped after an epoch). Train one on Build & "
            "Train, or with "
            "`python -m lsc_core train`.")
    st.stop()
best = [run["id"] for run in views.best_of(list(runs.values()), need_model=True).values()]
chosen = st.multiselect("Runs", list(runs), default=best, format_func=lambda i: views.run_label(runs[i]),
                        help="Default: the best completed run of each label mode. A fine run also gives "
                             "coarse labels, by summing its fine probabilities within each superclass.")
files = st.file_uploader("Images", type=list(predict.UPLOAD_TYPES), accept_multiple_files=True,
                         help=f"Any size up to {predict.MAX_PIXELS // 1_000_000} megapixels; transparency is "
                              "shown on white, animations use their first frame. The network sees a centred "
                              "square, shrunk to 32x32.")

# -- guard -----------------------------------------------------------------------------------
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
if not files:
    st.info("Upload one or more images (PNG, JPEG, WebP, BMP, GIF, TIFF).")
    st.stop()

# -- call ------------------------------------------------------------------------------------
uploads = [predict.prepare_upload(f.name, f.getvalue()) for f in files]
predictions = {}
for run_id in chosen:
    try:
        run, model = run_model(common.db_path(), run_id, runs[run_id]["model_path"])
    except ValueError as exc:
        st.error(plain(exc))
        continue
    predictions[run_id] = (run, predict.classify(model, run["label_mode"], uploads))

# -- render ----------------------------------------------------------------------------------
for index, upload in enumerate(uploads):
    st.divider()
    if upload.error:
        st.error(plain(upload.error))
        continue
    show_upload(upload, [(run, ranked[index]) for run, ranked in predictions.values()])
