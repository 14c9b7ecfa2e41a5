"""Every chart of the dashboard: pure functions from DataFrames to Altair charts.

Conventions, so charts from different pages look alike and test alike:
- a chart function takes a DataFrame (built in `views` or a sibling module) and plain
  options, returns an `alt.Chart`/`alt.ConcatChart`, and reads nothing else;
- tests check `chart.to_dict()`; pages only call `st.altair_chart(chart)`;
- shared sizes, colours and axis helpers live at the top; each page's charts get a
  section below ("-- <page or topic> --").
"""
from __future__ import annotations

import altair as alt
import pandas as pd

PANEL_WIDTH = 360  # px: two panels side by side fit a wide Streamlit layout
PANEL_HEIGHT = 260
# Train/test: test is what the study reports, so it gets the strong colour and solid line.
SPLIT_COLOURS = alt.Scale(domain=["test", "train"], range=["#d62728", "#1f77b4"])
SPLIT_DASHES = alt.Scale(domain=["test", "train"], range=[[1, 0], [5, 4]])
METRIC_TITLES = {"loss": "Loss (cross-entropy)", "accuracy": "Accuracy"}
METRICS = ("loss", "accuracy")


def _epoch_axis() -> alt.X:
    # Whole epochs only: fractional ticks would suggest half-epochs were logged.
    return alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))


def _value_axis(metric: str, field: str = "value") -> alt.Y:
    fmt = ".0%" if metric == "accuracy" else ".2f"
    return alt.Y(f"{field}:Q", title=METRIC_TITLES[metric], scale=alt.Scale(zero=False), axis=alt.Axis(format=fmt))


def _value_tooltip(metric: str, field: str = "value", title: str = "value") -> alt.Tooltip:
    return alt.Tooltip(f"{field}:Q", title=title, format=".4f" if metric == "loss" else ".2%")


# -- Runs: one run's training curves ----------------------------------------------------------
def run_curves_chart(curves: pd.DataFrame, best_epoch: int | None = None) -> alt.ConcatChart:
    """Train-versus-test loss and accuracy of one run, side by side, the best epoch marked.

    `curves` is the long form of `views.curves` (epoch, split, metric, value) for one run.
    """
    panels = [_run_metric_panel(curves[curves["metric"] == metric], metric, best_epoch) for metric in METRICS]
    return alt.hconcat(*panels).resolve_scale(color="shared", strokeDash="shared")


def _run_metric_panel(frame: pd.DataFrame, metric: str, best_epoch: int | None) -> alt.LayerChart:
    base = alt.Chart(frame).encode(x=_epoch_axis())
    lines = base.mark_line(point=True).encode(
        y=_value_axis(metric),
        color=alt.Color("split:N", scale=SPLIT_COLOURS, title="split"),
        strokeDash=alt.StrokeDash("split:N", scale=SPLIT_DASHES, title="split"),
        tooltip=[alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), _value_tooltip(metric)],
    )
    layers = [lines]
    if best_epoch is not None:
        best = frame[(frame["epoch"] == best_epoch) & (frame["split"] == "test")]
        rule = alt.Chart(pd.DataFrame({"epoch": [best_epoch]})).mark_rule(color="gray", strokeDash=[2, 2]).encode(
            x="epoch:Q", tooltip=[alt.Tooltip("epoch:Q", title="best epoch")])
        point = alt.Chart(best).mark_point(size=140, shape="diamond", filled=True, color="black").encode(
            x="epoch:Q", y="value:Q",
            tooltip=[alt.Tooltip("epoch:Q", title="best epoch"), _value_tooltip(metric, title=f"test {metric}")])
        layers += [rule, point]
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)


# -- Runs: several runs overlaid (compare) -------------------------------------------------
def compare_chart(curves: pd.DataFrame, splits: tuple[str, ...] = ("test", "train")) -> alt.ConcatChart:
    """Several runs' loss and accuracy overlaid: one colour per run, test solid and train dashed.

    `curves` is `views.curves(...)`, optionally smoothed by `views.smooth_curves`; when it
    has a `raw` column that differs from `value`, the raw curves are drawn faintly
    beneath the smoothed ones, as TensorBoard does.
    """
    frame = curves[curves["split"].isin(splits)]
    runs = list(dict.fromkeys(frame["run"]))  # colour order follows the selection order
    panels = [_compare_panel(frame[frame["metric"] == metric], metric, runs) for metric in METRICS]
    return alt.hconcat(*panels).resolve_scale(color="shared", strokeDash="shared")


def _compare_panel(frame: pd.DataFrame, metric: str, runs: list[str]) -> alt.LayerChart:
    colour = alt.Color("run:N", scale=alt.Scale(domain=runs), title="run", legend=alt.Legend(orient="bottom",
                                                                                            columns=2, labelLimit=320))
    dash = alt.StrokeDash("split:N", scale=SPLIT_DASHES, title="split")
    tooltip = [alt.Tooltip("run:N"), alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), _value_tooltip(metric)]
    smoothed = "raw" in frame.columns and not frame["raw"].equals(frame["value"])
    if smoothed:
        tooltip = tooltip[:3] + [_value_tooltip(metric, title="smoothed"), _value_tooltip(metric, "raw", "raw")]
    base = alt.Chart(frame).encode(x=_epoch_axis(), color=colour, strokeDash=dash, detail="split:N")
    lines = base.mark_line(point=alt.OverlayMarkDef(size=25)).encode(y=_value_axis(metric), tooltip=tooltip)
    layers = [lines]
    if smoothed:
        layers.insert(0, base.mark_line(opacity=0.25).encode(y=_value_axis(metric, "raw")))
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)
