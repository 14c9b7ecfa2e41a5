"""Charts of the Study page: the study's comparisons and its accuracies beside ours."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import PANEL_WIDTH
from .training import compare_chart

__all__ = ["study_comparison_chart", "study_accuracy_chart"]


def study_comparison_chart(curves: pd.DataFrame, title: str) -> alt.ConcatChart:
    """Loss and accuracy per epoch of one comparison's settings (`study.comparison_curves`)."""
    return compare_chart(curves).properties(title=alt.TitleParams(title, anchor="start", fontSize=15))


def study_accuracy_chart(table: pd.DataFrame) -> alt.Chart:
    """The study's best test accuracy beside ours for each experiment (`study.study_frame`)."""
    long = table.melt(id_vars=["part", "experiment"], value_vars=["study accuracy", "our accuracy"],
                      var_name="source", value_name="accuracy").dropna(subset=["accuracy"])
    long["source"] = long["source"].str.replace(" accuracy", "", regex=False)
    order = list(dict.fromkeys(table["experiment"]))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("experiment:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
        yOffset=alt.YOffset("source:N", sort=["study", "our"]),
        x=alt.X("accuracy:Q", title="best test accuracy", axis=alt.Axis(format=".0%")),
        color=alt.Color("source:N", scale=alt.Scale(domain=["study", "our"], range=["#9e9e9e", "#d62728"]),
                        title=None, legend=alt.Legend(orient="top")),
        tooltip=["part:N", "experiment:N", "source:N", alt.Tooltip("accuracy:Q", format=".2%")],
    ).properties(width=PANEL_WIDTH + 120)
