"""LSC dashboard: `streamlit run app.py`. Routes over the pages and draws the shared sidebar."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import streamlit as st  # noqa: E402

from app_pages.common import sidebar  # noqa: E402

st.set_page_config(page_title="LSC dashboard", page_icon=":material/neurology:", layout="wide")

PAGES = {
    "Dashboard": [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/data_explorer.py", title="Data", icon=":material/photo_library:"),
        st.Page("app_pages/build.py", title="Build & Train", icon=":material/construction:"),
        st.Page("app_pages/runs.py", title="Runs", icon=":material/monitoring:"),
    ],
    "Analysis": [
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/grid_on:"),
        st.Page("app_pages/predict.py", title="Predict", icon=":material/image_search:"),
    ],
    "Experiments": [
        st.Page("app_pages/search.py", title="Search", icon=":material/tune:"),
        st.Page("app_pages/study.py", title="Study", icon=":material/science:"),
    ],
}

navigation = st.navigation(PAGES)
sidebar()
navigation.run()
