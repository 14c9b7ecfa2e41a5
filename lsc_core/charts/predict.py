"""Charts of the Predict page: the top-k probabilities of an image (`lsc_core.predict` frames)."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import CONTENT_SIZED

__all__ = ["probability_bars"]

LEVELS = ("fine", "coarse")
BAR_STEP_PX = 20  # one label's row
BARS_WIDTH_PX = 200  # 100%; the printed probability goes to the right of its bar
LABEL_PX = 200  # the names' gutter, the same in every panel so their bars line up


def probability_bars(frame: pd.DataFrame) -> alt.VConcatChart:
    """Top-k probabilities (`predict.prediction_frame`), one panel per level present (fine, coarse),
    each bar with its probability printed beside it in the bar's colour."""
    levels = [level for level in LEVELS if (frame["level"] == level).any()]
    panels = []
    for level in levels:
        # The theme's first palette colour in every panel (the one it picks to stand out on its
        # background, light or dark): a text mark's default is a fixed dark grey.
        colour = alt.Color("level:N", scale=alt.Scale(domain=[level]), legend=None)
        base = alt.Chart(frame[frame["level"] == level]).encode(
            y=alt.Y("label:N", sort=alt.EncodingSortField("probability", order="descending"), title=None,
                    axis=alt.Axis(labelOverlap=False, labelLimit=LABEL_PX, minExtent=LABEL_PX)),
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
            tooltip=["level:N", "label:N", alt.Tooltip("probability:Q", format=".1%")],
        )
        bars = base.mark_bar().encode(color=colour)
        text = base.mark_text(align="left", dx=4).encode(text=alt.Text("probability:Q", format=".1%"), color=colour)
        panels.append(alt.layer(bars, text, title=alt.TitleParams(level, fontSize=13)).properties(
            height=alt.Step(BAR_STEP_PX), width=BARS_WIDTH_PX))
    # "pad": the labels and printed probabilities are added around the bars, never squeezed into them.
    return alt.vconcat(*panels).resolve_scale(color="independent").properties(
        autosize=CONTENT_SIZED)
