"""Charts of the Search page: each searched hyperparameter against the trials' accuracy, and
all of them at once as parallel coordinates."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .common import PANEL_HEIGHT

__all__ = ["search_scatter_chart", "search_parallel_chart"]


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




ACCURACY = "best test accuracy"
MAX_AXIS_LABELS = 8  # an axis with more distinct values labels only its ends


def search_parallel_chart(results: pd.DataFrame, params: list[str]) -> alt.LayerChart:
    """Parallel coordinates of a search: one vertical axis per searched setting and one for the
    best test accuracy, one line per trial, coloured by that accuracy.

    Each axis spans its own range: numbers linearly (log10 where they span a decade or
    more, as learning rates do), words evenly in sorted order. The values sit as labels
    beside each axis; hovering a line shows the trial's settings.
    """
    frame = results.dropna(subset=[ACCURACY]).reset_index(drop=True)
    axes = [*params, ACCURACY]
    rows = []
    for axis in axes:
        positions, labels = _axis_positions(frame[axis])
        rows += [{"trial": int(trial), "axis": axis, "position": position, "value": label,
                  "accuracy": float(accuracy)}
                 for trial, accuracy, position, label in zip(frame["trial"], frame[ACCURACY], positions, labels)]
    long = pd.DataFrame(rows, columns=["trial", "axis", "position", "value", "accuracy"])
    x = alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelAngle=0, orient="top", labelLimit=140))
    lines = alt.Chart(long).mark_line(strokeWidth=2, opacity=0.8).encode(
        x=x, y=alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.05, 1.05])),
        detail="trial:N",
        color=alt.Color("accuracy:Q", title=ACCURACY, scale=alt.Scale(scheme="viridis"),
                        legend=alt.Legend(format=".1%")),
        tooltip=[alt.Tooltip("trial:Q"), alt.Tooltip("axis:N", title="setting"), alt.Tooltip("value:N"),
                 alt.Tooltip("accuracy:Q", title=ACCURACY, format=".2%")])
    rules = alt.Chart(pd.DataFrame({"axis": axes})).mark_rule(color="#888888").encode(x=x)
    labels = alt.Chart(_axis_labels(long)).mark_text(align="left", dx=4, fontSize=11).encode(
        x=x, y=alt.Y("position:Q", axis=None), text="value:N")
    width = max(PANEL_HEIGHT, 110 * len(axes))
    return alt.layer(rules, lines, labels).properties(width=width, height=PANEL_HEIGHT)


def _axis_positions(values: pd.Series) -> tuple[list[float], list[str]]:
    """Each value's height on its axis (0..1) and how it reads."""
    numbers = pd.to_numeric(values, errors="coerce")
    if len(values) and not numbers.isna().any():
        scaled = numbers.astype(float)
        if scaled.min() > 0 and scaled.max() / scaled.min() >= 10:
            scaled = np.log10(scaled)
        low, high = scaled.min(), scaled.max()
        positions = [0.5 if high == low else (v - low) / (high - low) for v in scaled]
        return positions, [f"{v:.3g}" for v in numbers]
    order = sorted(set(map(str, values)))
    place = {word: (0.5 if len(order) == 1 else n / (len(order) - 1)) for n, word in enumerate(order)}
    return [place[str(v)] for v in values], [str(v) for v in values]


def _axis_labels(long: pd.DataFrame) -> pd.DataFrame:
    """One label per distinct value on each axis, or only its two ends when there are many."""
    labels = long.drop_duplicates(["axis", "position"])[["axis", "position", "value"]]
    parts = []
    for _, axis_labels in labels.groupby("axis", sort=False):
        if len(axis_labels) > MAX_AXIS_LABELS:
            axis_labels = axis_labels.loc[[axis_labels["position"].idxmin(), axis_labels["position"].idxmax()]]
        parts.append(axis_labels)
    return pd.concat(parts) if parts else labels
