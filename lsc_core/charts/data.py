"""Charts of the Data page: class counts per split (`lsc_core.explore` frames)."""
from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["class_counts_chart"]


def class_counts_chart(table: pd.DataFrame) -> alt.Chart:
    """Grouped bars of a class_counts_table: train and test side by side per class, in label order."""
    long = table.melt(id_vars=["label", "class"], value_vars=["train", "test"], var_name="split",
                      value_name="images")
    order = list(table["class"])
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("class:N", sort=order, title=None, axis=alt.Axis(labelAngle=-60, labelOverlap=False, labelLimit=140)),
        xOffset=alt.XOffset("split:N", sort=["train", "test"]),
        y=alt.Y("images:Q", title="images"),
        color=alt.Color("split:N", sort=["train", "test"], title="split"),
        tooltip=["class:N", "split:N", "images:Q"],
    ).properties(height=260)
