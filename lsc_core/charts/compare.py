"""Charts of run against run (`lsc_core.compare` frames): per-class differences, reliability diagrams."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import CONTENT_SIZED, PANEL_WIDTH, RUN_SCHEME

__all__ = ["class_difference_bars", "reliability_diagram"]

BETTER_B, BETTER_A = "#2ca02c", "#d62728"  # green where run B is better, red where run A is
# px, the plotting areas. Content-sized (axes, labels and legend come on top): fitted into the
# element's box, the class names took most of the bars' 240 px and cut the axis title, and the
# reliability legend was cut at the diagram's edge ("(ECE 0.3").
DIFFERENCE_WIDTH, DIFFERENCE_HEIGHT = 2 * PANEL_WIDTH, 200
RELIABILITY_PX = 360


def class_difference_bars(frame: pd.DataFrame, name_a: str, name_b: str) -> alt.Chart:
    """Accuracy of B minus A per class (`compare.Comparison.per_class`), largest gain first.

    Bars above zero: B better on that class; the tooltip gives both accuracies and the
    class's own McNemar p-value.
    """
    order = list(frame["class"])
    data = frame.assign(better=frame["difference"].map(lambda d: name_b if d > 0 else name_a if d < 0 else "same"))
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("class:N", sort=order, title=None,
                axis=alt.Axis(labelAngle=-90, labelFontSize=9 if len(order) > 20 else 11, labelOverlap=False,
                              labelLimit=240)),  # px: whole superclass names ("household_electrical_devices")
        y=alt.Y("difference:Q", axis=alt.Axis(format="+%"), title="accuracy, B minus A"),
        color=alt.Color("better:N", scale=alt.Scale(domain=[name_b, name_a, "same"],
                                                    range=[BETTER_B, BETTER_A, "#999999"]),
                        title="better on the class"),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("images:Q", format="d"),
                 alt.Tooltip("accuracy_a:Q", format=".0%", title=f"A: {name_a}"),
                 alt.Tooltip("accuracy_b:Q", format=".0%", title=f"B: {name_b}"),
                 alt.Tooltip("difference:Q", format="+.0%"), alt.Tooltip("p_value:Q", format=".3g", title="p")],
    ).properties(width=DIFFERENCE_WIDTH, height=DIFFERENCE_HEIGHT, autosize=CONTENT_SIZED)


def reliability_diagram(frame: pd.DataFrame) -> alt.Chart:
    """Accuracy against confidence per bin for each run (`compare.reliability_frame`), with the
    diagonal of perfect calibration. Below the diagonal: over-confident. The legend gives ECE."""
    data = frame.assign(legend=frame["run"] + " (ECE " + (frame["ece"] * 100).round(1).astype(str) + "%)")
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0]})).mark_line(strokeDash=[4, 3], color="gray").encode(
        x="x:Q", y="x:Q")
    axis = {"scale": alt.Scale(domain=[0, 1]), "axis": alt.Axis(format="%")}
    curves = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("confidence:Q", title="confidence (probability of the predicted class)", **axis),
        y=alt.Y("accuracy:Q", title="accuracy", **axis),
        color=alt.Color("legend:N", scale=alt.Scale(scheme=RUN_SCHEME), title="run",
                        legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400)),
        tooltip=[alt.Tooltip("run:N"), alt.Tooltip("bin_low:Q", format=".0%", title="bin from"),
                 alt.Tooltip("bin_high:Q", format=".0%", title="bin to"), alt.Tooltip("images:Q", format=","),
                 alt.Tooltip("confidence:Q", format=".1%"), alt.Tooltip("accuracy:Q", format=".1%")],
    )
    return (diagonal + curves).properties(width=RELIABILITY_PX, height=RELIABILITY_PX, autosize=CONTENT_SIZED)
