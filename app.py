"""LSC dashboard: `streamlit run app.py`. Routes over the pages and draws the shared sidebar."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import streamlit as st  # noqa: E402

from app_pages.common import HOME, PAGES, db_path, keep_keras_state_between_reruns, sidebar  # noqa: E402
from lsc_core.markup import plain  # noqa: E402
from lsc_core.store import STORE_ERRORS  # noqa: E402

st.set_page_config(page_title="LSC dashboard", page_icon=":material/neurology:", layout="wide")
keep_keras_state_between_reruns()  # the worker trains in this process: no clear_session after each run

# Pages by section, in the order of common.PAGES; the first is the default.
sections: dict[str, list] = {}
for page in PAGES:
    sections.setdefault(page.section, []).append(
        st.Page(page.path, title=page.title, icon=page.icon, default=page.path == HOME))

navigation = st.navigation(sections)
try:
    sidebar()
    navigation.run()
except STORE_ERRORS as exc:  # a store that is not one, or damaged: one line, no traceback
    st.error(plain(f"The run store {db_path()} cannot be used: {exc}"))
