"""Charts of the Search page: each searched hyperparameter against the trials' accuracy."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import PANEL_HEIGHT

__all__ = ["search_scatter_chart"]


SEARCH_PANEL_WIDTH = 120  # px: five of the study's parameters fit a wide layout in one row


def search_scatter_chart(results: pd.DataFrame, params: list[str]) -> alt.HConcatChart:
    """One panel per searched parameter: its value (x) against the trial's best test accuracy (y).

    `results` is `search.results_frame`; trials without an accuracy yet are left out.
    Numbers spanning a decade or more (learning rates) get a log axis; words (optimizers)
    a nominal one. Hovering a trial highlights it in every panel.
    """
    frame = results.dropna(subset=["best test accuracy"]).copy()
    frame["best test accuracy"] = frame["best test accuracy"].astype(float)
    hover = alt.selection_point(fields=["trial"], on="pointerover", empty=False)
    tooltip = [alt.Tooltip("trial:Q"), alt.Tooltip("best test accuracy:Q", format=".2%"),
               *[alt.Tooltip(f"{name}:N") for name in params]]
    panels = []
    for position, name in enumerate(params):
        panel = alt.Chart(frame).mark_circle(size=90).encode(
            x=_search_axis(frame, name),
            y=alt.Y("best test accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format=".1%"),
                    title="best test accuracy" if position == 0 else None),
            color=alt.condition(hover, alt.value("#d62728"), alt.value("#1f77b4")),
            tooltip=tooltip,
        ).properties(width=SEARCH_PANEL_WIDTH, height=PANEL_HEIGHT - 60)
        panels.append(panel.add_params(hover) if position == 0 else panel)
    return alt.hconcat(*panels).resolve_scale(y="shared")


def _search_axis(frame: pd.DataFrame, name: str) -> alt.X:
    values = pd.to_numeric(frame[name], errors="coerce") if len(frame) else pd.Series(dtype=float)
    if len(frame) == 0 or values.isna().any():
        return alt.X(f"{name}:N", title=name, axis=alt.Axis(labelAngle=0))
    if values.min() > 0 and values.max() / values.min() >= 10:
        return alt.X(f"{name}:Q", title=name, scale=alt.Scale(type="log"))
    # Choice values such as filter counts are few and discrete: ordinal keeps them evenly apart.
    return alt.X(f"{name}:O", title=name, axis=alt.Axis(labelAngle=0))


