"""Charts of the Evaluate page: confusion heatmaps and per-class accuracy (`lsc_core.evaluate` frames)."""
from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import pandas as pd

from .common import CONTENT_SIZED

__all__ = ["confusion_heatmap", "heatmap_geometry", "per_class_bars"]

MAIN_COLUMN_PX = 940  # the main column beside the sidebar in a 1400 px wide window (wide layout)


@dataclass(frozen=True)
class HeatmapGeometry:
    """Cell and text sizes (px) that keep every class name legible: text no taller than its row,
    and column labels alternating bottom/top where a column is narrower than its text."""

    column_px: float
    row_px: float
    font_px: int

    @property
    def alternate_columns(self) -> bool:
        return self.column_px < self.font_px + 2


# 20 superclasses: square 24 px cells, 12 px names. 100 classes: 10 px names on 11 px rows;
# 7.5 px columns (750 px: the matrix, its row names and the legend above fit MAIN_COLUMN_PX),
# their names alternating bottom/top, so 15 px apart on each side.
HEATMAP_GEOMETRY = {20: HeatmapGeometry(24, 24, 12), 100: HeatmapGeometry(7.5, 11, 10)}


def heatmap_geometry(classes: int) -> HeatmapGeometry:
    """The geometry for a matrix of `classes` classes (the nearest defined size at or above it)."""
    fitting = [n for n in sorted(HEATMAP_GEOMETRY) if n >= classes]
    return HEATMAP_GEOMETRY[fitting[0] if fitting else max(HEATMAP_GEOMETRY)]


def confusion_heatmap(frame: pd.DataFrame, order: list[str], *, normalised: bool, title: str = "") -> alt.LayerChart:
    """Heatmap of `evaluate.confusion_frame` rows: true class down, predicted across, in `order`.

    Sized to its content (`heatmap_geometry`): every class name is drawn, none overlaps,
    and the chart fits the main column at 1400 px, at 20 and at 100 classes. Colours and
    text come from the Streamlit theme (its sequential ramp), so it reads in light and dark.
    Only the cells with images are drawn (the empty ones show the background, so they recede
    in either theme): a fine matrix sends a few thousand rows to the browser instead of
    10,000, which draws the first view sooner. A plain `to_dict()` of a fine matrix may still
    need `alt.data_transformers.disable_max_rows()`.
    Colour is the row share when `normalised` (classes compare regardless of their test
    count), else the raw count. Tooltips give true, predicted, count and share.
    """
    geometry = heatmap_geometry(len(order))
    value = "share" if normalised else "count"
    legend_title = "share of true class" if normalised else "images"
    # Every class name shown (no overlap thinning): the point is to read which cell is which.
    # labelFlush off: the theme pushes the first and last names inwards, onto their neighbours.
    labels = {"labelFontSize": geometry.font_px, "labelLimit": 220, "labelOverlap": False, "labelFlush": False}
    bottom = order[0::2] if geometry.alternate_columns else order
    drawn = frame.loc[frame["count"] > 0, ["true", "predicted", "count", "share"]]
    # Every class keeps its row and column, also one without a drawn cell.
    cells = alt.Chart(drawn).mark_rect().encode(
        x=alt.X("predicted:N", sort=order, title="predicted", scale=alt.Scale(domain=order),
                axis=alt.Axis(labelAngle=-90, values=bottom, **labels)),
        y=alt.Y("true:N", sort=order, scale=alt.Scale(domain=order), axis=alt.Axis(**labels), title="true"),
        # A square-root scale keeps the few-image confusions visible next to a strong diagonal.
        color=alt.Color(f"{value}:Q", scale=alt.Scale(type="sqrt"), title=legend_title,
                        legend=alt.Legend(format=".0%" if normalised else "d", orient="top", gradientLength=240)),
        tooltip=[alt.Tooltip("true:N"), alt.Tooltip("predicted:N"), alt.Tooltip("count:Q", format="d"),
                 alt.Tooltip("share:Q", format=".1%", title="share of true class")],
    )
    layers = [cells]
    if geometry.alternate_columns:  # the other half of the column names, above the matrix
        top = alt.Chart(pd.DataFrame({"predicted": order})).mark_tick(opacity=0).encode(
            x=alt.X("predicted:N", sort=order, title=None,
                    axis=alt.Axis(orient="top", labelAngle=-90, values=order[1::2], **labels)))
        layers.append(top)
    # "pad": the cells keep their size and the names are added around them. Streamlit's default,
    # "fit", would squeeze names and cells together into the width and height.
    return alt.layer(*layers, title=title).resolve_axis(x="independent").properties(
        width=geometry.column_px * len(order), height=geometry.row_px * len(order),
        autosize=CONTENT_SIZED)


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
