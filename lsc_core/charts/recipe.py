"""Charts of the training recipe: the learning-rate schedule before launch (Build page) and
each epoch's learning rate under a run's curves (Runs page)."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import CONTENT_SIZED, PANEL_WIDTH, epoch_axis

__all__ = ["schedule_chart", "learning_rate_chart"]

# px, the plotting area (axes and title come on top, `autosize: pad`): a strip as wide as the
# two curve panels above it with the second one's axis, read for its shape more than its values.
LR_WIDTH = 2 * PANEL_WIDTH + 80
LR_HEIGHT = 110
LR_COLOUR = "#2ca02c"


def _rate_axis(field: str = "learning_rate") -> alt.Y:
    # Linear from zero: warm-ups, decays and cosine tails (which end near 0, where a log scale
    # would spend decades on the last steps) all read as the shapes they are.
    return alt.Y(f"{field}:Q", title="learning rate", axis=alt.Axis(format="~g", tickCount=3),
                 scale=alt.Scale(zero=True))


def schedule_chart(frame: pd.DataFrame, width: int = LR_WIDTH) -> alt.LayerChart:
    """The learning rate a run will follow, step by step, with each epoch's starting rate marked.

    `frame` is `editor.schedule_frame` (epoch, learning_rate, starts_epoch).
    """
    # Drawn step by step (fractional epochs), read on whole-epoch ticks: "1.5" read as an epoch number.
    line = alt.Chart(frame).mark_line(color=LR_COLOUR).encode(x=epoch_axis(), y=_rate_axis())
    starts = alt.Chart(frame[frame["starts_epoch"]]).mark_point(filled=True, color=LR_COLOUR, size=40).encode(
        x="epoch:Q", y="learning_rate:Q",
        tooltip=[alt.Tooltip("epoch:Q", title="epoch starts", format="d"),
                 alt.Tooltip("learning_rate:Q", title="learning rate", format=".3~g")])
    return alt.layer(line, starts).properties(title="Learning rate over the run", width=width, height=LR_HEIGHT,
                                              autosize=CONTENT_SIZED)


def learning_rate_chart(frame: pd.DataFrame, width: int = LR_WIDTH) -> alt.Chart:
    """Each epoch's learning rate (the one it started with), as a step line under the curves.

    `frame` is `views.learning_rates` (epoch, learning_rate).
    """
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(color=LR_COLOUR), interpolate="step-after",
                                        color=LR_COLOUR).encode(
        x=epoch_axis(), y=_rate_axis(),
        tooltip=[alt.Tooltip("epoch:Q"), alt.Tooltip("learning_rate:Q", title="learning rate", format=".3~g")],
    ).properties(title="Learning rate", width=width, height=LR_HEIGHT, autosize=CONTENT_SIZED)
