"""Charts of the Runs page: one run's training curves, and several runs overlaid (Compare)."""
from __future__ import annotations

import altair as alt
import pandas as pd

from .common import (CONTENT_SIZED, DASH_LEGEND, LINE_LEGEND, METRIC_TITLES, METRICS, OPTIONAL_METRICS, PANEL_HEIGHT,
                     PANEL_WIDTH, PANELS_PER_ROW, RUN_SCHEME, VALIDATION_SPLITS, epoch_axis, split_scales, value_axis,
                     value_tooltip)

__all__ = ["run_curves_chart", "compare_chart", "system_chart"]


def run_curves_chart(curves: pd.DataFrame, best_epoch: int | None = None) -> alt.ConcatChart:
    """Train-versus-test loss and accuracy of one run, side by side, the best epoch marked; for a
    fine run a third panel below them: the share of its errors inside the right superclass.

    `curves` is the long form of `views.curves` (epoch, split, metric, value) for one run.
    """
    scales = split_scales(curves)
    present = set(curves["metric"])
    metrics = METRICS + tuple(metric for metric in OPTIONAL_METRICS if metric in present)
    panels = [_run_metric_panel(curves[curves["metric"] == metric], metric, best_epoch, scales)
              for metric in metrics]
    return alt.concat(*panels, columns=PANELS_PER_ROW).resolve_scale(
        color="shared", strokeDash="shared").properties(autosize=CONTENT_SIZED)


def _run_metric_panel(frame: pd.DataFrame, metric: str, best_epoch: int | None,
                      scales: tuple[alt.Scale, alt.Scale]) -> alt.LayerChart:
    base = alt.Chart(frame).encode(x=epoch_axis())
    lines = base.mark_line(point=True).encode(
        y=value_axis(metric),
        color=alt.Color("split:N", scale=scales[0], title="split", legend=LINE_LEGEND),
        strokeDash=alt.StrokeDash("split:N", scale=scales[1], title="split", legend=LINE_LEGEND),
        tooltip=[alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), value_tooltip(metric)],
    )
    layers = [lines]
    if best_epoch is not None:
        # The best epoch was picked on the validation split: test, or hold-out.
        best = frame[(frame["epoch"] == best_epoch) & frame["split"].isin(VALIDATION_SPLITS)]
        validation = best["split"].iloc[0] if len(best) else "test"
        rule = alt.Chart(pd.DataFrame({"epoch": [best_epoch]})).mark_rule(color="gray", strokeDash=[2, 2]).encode(
            x="epoch:Q", tooltip=[alt.Tooltip("epoch:Q", title="best epoch")])
        point = alt.Chart(best).mark_point(size=140, shape="diamond", filled=True, color="black").encode(
            x="epoch:Q", y="value:Q",
            tooltip=[alt.Tooltip("epoch:Q", title="best epoch"),
                     value_tooltip(metric, title=f"{validation} {metric}")])
        layers += [rule, point]
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)


def compare_chart(curves: pd.DataFrame, splits: tuple[str, ...] = ("test", "train")) -> alt.ConcatChart:
    """Several runs' loss and accuracy overlaid: one colour per run, test solid and train dashed.

    `curves` is `views.curves(...)`, optionally smoothed by `views.smooth_curves`; when it
    has a `raw` column that differs from `value`, the raw curves are drawn faintly
    beneath the smoothed ones, as TensorBoard does. "test" in `splits` stands for each
    run's validation split, so it also shows the "hold-out" curves of hold-out runs.
    """
    wanted = set(splits) | ({"hold-out"} if "test" in splits else set())
    frame = curves[curves["split"].isin(wanted)]
    runs = list(dict.fromkeys(frame["run"]))  # colour order follows the selection order
    dashes = split_scales(frame)[1]
    panels = [_compare_panel(frame[frame["metric"] == metric], metric, runs, dashes) for metric in METRICS]
    return alt.hconcat(*panels).resolve_scale(color="shared", strokeDash="shared")


def _compare_panel(frame: pd.DataFrame, metric: str, runs: list[str], dashes: alt.Scale) -> alt.LayerChart:
    colour = alt.Color("run:N", scale=alt.Scale(domain=runs, scheme=RUN_SCHEME), title="run",
                       legend=alt.Legend(orient="bottom", columns=2, labelLimit=320, symbolType="stroke",
                                         symbolStrokeWidth=3, symbolSize=400, symbolOpacity=1))
    dash = alt.StrokeDash("split:N", scale=dashes, title="split", legend=DASH_LEGEND)
    tooltip = [alt.Tooltip("run:N"), alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), value_tooltip(metric)]
    smoothed = "raw" in frame.columns and not frame["raw"].equals(frame["value"])
    if smoothed:
        tooltip = tooltip[:3] + [value_tooltip(metric, title="smoothed"), value_tooltip(metric, "raw", "raw")]
    base = alt.Chart(frame).encode(x=epoch_axis(), color=colour, detail="split:N")
    lines = base.mark_line().encode(y=value_axis(metric), strokeDash=dash)
    # Points in a layer of their own: a line's point overlay would turn the split legend's
    # symbols into points, which have no colour there and so do not show.
    points = base.mark_circle(size=25, opacity=1).encode(y=value_axis(metric), tooltip=tooltip)
    layers = [lines, points]
    if smoothed:
        layers.insert(0, base.mark_line(opacity=0.25).encode(y=value_axis(metric, "raw"), strokeDash=dash))
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)




def system_chart(samples: pd.DataFrame) -> alt.ConcatChart:
    """The training process's CPU and memory use over the run (and the GPU's, when sampled).

    `samples` is `views.system_frame` (minutes, resource, value, unit): one panel per
    resource, each with its own unit.
    """
    panels = []
    for resource, frame in samples.groupby("resource", sort=False):
        unit = frame["unit"].iloc[0]
        panels.append(alt.Chart(frame).mark_line().encode(
            x=alt.X("minutes:Q", title="minutes since training began"),
            y=alt.Y("value:Q", title=unit, scale=alt.Scale(zero=True)),
            tooltip=[alt.Tooltip("minutes:Q", format=".1f"), alt.Tooltip("value:Q", title=unit, format=",.0f")],
        ).properties(title=resource, width=PANEL_WIDTH * 2 // 3, height=PANEL_HEIGHT * 2 // 3))
    return alt.hconcat(*panels)
