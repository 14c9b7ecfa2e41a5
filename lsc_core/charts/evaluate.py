"""Charts of the Evaluate page: confusion heatmaps and per-class accuracy (`lsc_core.evaluate` frames)."""
from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["confusion_heatmap", "per_class_bars"]

CELL_PX = {"fine": 9, "coarse": 24}  # heatmap cell size: 100 fine classes fit in ~900 px


def confusion_heatmap(frame: pd.DataFrame, order: list[str], *, normalised: bool, label_mode: str,
                      title: str = "") -> alt.Chart:
    """Heatmap of `evaluate.confusion_frame` rows: true class down, predicted across, in `order`.

    A fine matrix has 10,000 rows: Streamlit's own data transformer takes them all; a plain
    `to_dict()` needs `alt.data_transformers.disable_max_rows()`.
    Colour is the row share when `normalised` (classes compare regardless of their test
    count), else the raw count. Tooltips give true, predicted, count and share.
    """
    side = CELL_PX[label_mode] * len(order)
    value = "share" if normalised else "count"
    legend_title = "share of true class" if normalised else "images"
    # Every class name shown (no overlap thinning): the point is to read which cell is which.
    labels = {"labelFontSize": 8 if label_mode == "fine" else 11, "labelLimit": 160, "labelOverlap": False}
    return alt.Chart(frame, title=title).mark_rect().encode(
        x=alt.X("predicted:N", sort=order, axis=alt.Axis(labelAngle=-90, **labels), title="predicted"),
        y=alt.Y("true:N", sort=order, axis=alt.Axis(**labels), title="true"),
        # White at zero, so empty cells recede; a square-root scale keeps the few-image confusions
        # visible next to a strong diagonal.
        color=alt.Color(f"{value}:Q", scale=alt.Scale(type="sqrt", range=["#ffffff", "#08306b"]), title=legend_title,
                        legend=alt.Legend(format=".0%" if normalised else "d")),
        tooltip=[alt.Tooltip("true:N"), alt.Tooltip("predicted:N"), alt.Tooltip("count:Q", format="d"),
                 alt.Tooltip("share:Q", format=".1%", title="share of true class")],
    ).properties(width=side, height=side)


def per_class_bars(frame: pd.DataFrame, baseline: float) -> alt.Chart:
    """Accuracy of each class (`evaluate.per_class_frame`), best first, with the chance level as a rule."""
    order = list(frame["class"])
    tooltip = [c for c in ("class", "superclass", "images") if c in frame.columns]
    bars = alt.Chart(frame).mark_bar().encode(
        x=alt.X("class:N", sort=order, axis=alt.Axis(labelAngle=-90, labelFontSize=9, labelOverlap=False),
                title=None),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="test accuracy"),
        color=alt.Color("superclass:N", legend=None) if "superclass" in frame.columns else alt.value("#4c78a8"),
        tooltip=tooltip + [alt.Tooltip("accuracy:Q", format=".1%")],
    )
    chance = alt.Chart(pd.DataFrame({"chance": [baseline]})).mark_rule(strokeDash=[4, 3], color="gray").encode(
        y="chance:Q", tooltip=[alt.Tooltip("chance:Q", format=".0%", title="random guess")])
    return (bars + chance).properties(height=260, width="container")
