"""Charts of the Predict page: the top-k probabilities of an image (`lsc_core.predict` frames)."""
from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["probability_bars"]


def probability_bars(frame: pd.DataFrame) -> alt.Chart:
    """Top-k probabilities (`predict.prediction_frame`), one panel row per level (fine, coarse)."""
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("label:N", sort=alt.EncodingSortField("probability", order="descending"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("level:N", scale=alt.Scale(domain=["fine", "coarse"]), legend=None),
        row=alt.Row("level:N", sort=["fine", "coarse"], title=None,
                    header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=["level:N", "label:N", alt.Tooltip("probability:Q", format=".1%")],
    ).resolve_scale(y="independent").properties(height=alt.Step(20), width=200)
