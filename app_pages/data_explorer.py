"""Data: CIFAR-100 as a person wants to see it: sample images per class, the 20
superclasses with their fine classes, and how many images each class has."""
import streamlit as st

from lsc_core import charts, explore
from app_pages import common

SEED_KEY = "data_sample_seed"  # bumped by Shuffle: a new, repeatable sample
SAMPLE_COUNT = 24

st.title("Data")
data = common.data()
st.caption(f"Loaded from {data.source}: {len(data.x_train):,} training and {len(data.x_test):,} test images, "
           f"{len(data.fine_names)} fine classes in {len(data.coarse_names)} superclasses.")

# -- Inputs ---------------------------------------------------------------------------------
st.session_state.setdefault(SEED_KEY, 0)
mode_col, class_col, split_col, shuffle_col = st.columns([2, 3, 2, 1], vertical_alignment="bottom")
mode = mode_col.radio("Show a", ["fine", "coarse"], format_func=explore.MODE_LABELS.get, horizontal=True,
                      key="data_mode")
names = data.names(mode)
name = class_col.selectbox(explore.MODE_LABELS[mode].capitalize(), names, key=f"data_class_{mode}")
split = split_col.radio("From the", ["train", "test"], horizontal=True, key="data_split")
if shuffle_col.button("Shuffle", icon=":material/shuffle:", help="Show another sample of this class"):
    st.session_state[SEED_KEY] += 1

# -- Call and render ------------------------------------------------------------------------
samples = explore.sample_grid(data, mode, names.index(name), count=SAMPLE_COUNT,
                              seed=st.session_state[SEED_KEY], split=split)
if not len(samples.indices):
    st.info(f"The {split} split has no images of {name}.")
else:
    st.caption(f"{len(samples.indices)} {split} images of {explore.MODE_LABELS[mode]} **{name}** "
               f"(sample {st.session_state[SEED_KEY]}), shown {explore.UPSCALE}x with sharp pixels.")
    # PNG: JPEG (the default) would smear the sharp pixel edges.
    st.image(list(samples.images), caption=samples.captions, width=explore.UPSCALE * 32, output_format="PNG")

st.subheader("Superclasses")
superclasses = explore.superclass_table(data)
st.dataframe(superclasses, hide_index=True, width="stretch", height=35 * (len(superclasses) + 1) + 3)

st.subheader("Images per class")
counts_mode = st.radio("Count by", ["coarse", "fine"], format_func=explore.MODE_LABELS.get, horizontal=True,
                       key="data_counts_mode")
counts = explore.class_counts_table(data, counts_mode)
st.altair_chart(charts.class_counts_chart(counts), width="stretch")
st.dataframe(counts, hide_index=True, width="stretch")
