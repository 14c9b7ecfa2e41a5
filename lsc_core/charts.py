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

PANEL_WIDTH = 320  # px: two panels and their legend fit side by side even in a centred layout
PANEL_HEIGHT = 260
# Splits (views.curves): test is what the study reports, so it gets the strong colour and a
# solid line; a run validated on a hold-out part of train has "hold-out" instead, also
# solid (it is the split its best epoch was picked on) in a colour of its own.
SPLITS = ("test", "hold-out", "train")
VALIDATION_SPLITS = ("test", "hold-out")
_SPLIT_COLOURS = {"test": "#d62728", "hold-out": "#ff7f0e", "train": "#1f77b4"}
_SPLIT_DASHES = {"test": [1, 0], "hold-out": [1, 0], "train": [5, 4]}
RUN_SCHEME = "tableau10"  # distinct hues per run (the theme's default shades of blue are hard to tell apart)
# Line symbols in legends, so the dashed/solid distinction shows there too.
LINE_LEGEND = alt.Legend(symbolType="stroke", symbolStrokeWidth=2)
NEUTRAL = "#555555"  # legend symbols that stand for a line style, not a colour
# Opaque symbols even where the first layer is a faint one (the raw curves beneath smoothed ones).
DASH_LEGEND = alt.Legend(symbolType="stroke", symbolStrokeWidth=2, symbolStrokeColor=NEUTRAL, symbolSize=400,
                         symbolOpacity=1)
# Axis formats without a fixed precision: Vega picks as many digits as the tick step needs,
# so a narrow range (accuracy 8.0-9.5%, loss 4.21-4.23) never repeats a label.
AXIS_FORMATS = {"accuracy": "%", "loss": ""}
METRIC_TITLES = {"loss": "Loss (cross-entropy)", "accuracy": "Accuracy"}
METRICS = ("loss", "accuracy")


def _splits_in(frame: pd.DataFrame) -> list[str]:
    """The splits the frame has, in SPLITS order; test and train when it has none (an empty chart)."""
    present = [split for split in SPLITS if split in set(frame["split"])]
    return present or ["test", "train"]


def split_scales(frame: pd.DataFrame) -> tuple[alt.Scale, alt.Scale]:
    """Colour and dash scales over the splits present, so a legend lists only those shown."""
    splits = _splits_in(frame)
    return (alt.Scale(domain=splits, range=[_SPLIT_COLOURS[s] for s in splits]),
            alt.Scale(domain=splits, range=[_SPLIT_DASHES[s] for s in splits]))


def _epoch_axis() -> alt.X:
    # Whole epochs only: fractional ticks would suggest half-epochs were logged.
    return alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))


def _value_axis(metric: str, field: str = "value") -> alt.Y:
    axis = alt.Axis(format=AXIS_FORMATS[metric]) if AXIS_FORMATS[metric] else alt.Axis()
    return alt.Y(f"{field}:Q", title=METRIC_TITLES[metric], scale=alt.Scale(zero=False), axis=axis)


def _value_tooltip(metric: str, field: str = "value", title: str = "value") -> alt.Tooltip:
    return alt.Tooltip(f"{field}:Q", title=title, format=".4f" if metric == "loss" else ".2%")


# -- Runs: one run's training curves ----------------------------------------------------------
def run_curves_chart(curves: pd.DataFrame, best_epoch: int | None = None) -> alt.ConcatChart:
    """Train-versus-test loss and accuracy of one run, side by side, the best epoch marked.

    `curves` is the long form of `views.curves` (epoch, split, metric, value) for one run.
    """
    scales = split_scales(curves)
    panels = [_run_metric_panel(curves[curves["metric"] == metric], metric, best_epoch, scales)
              for metric in METRICS]
    return alt.hconcat(*panels).resolve_scale(color="shared", strokeDash="shared")


def _run_metric_panel(frame: pd.DataFrame, metric: str, best_epoch: int | None,
                      scales: tuple[alt.Scale, alt.Scale]) -> alt.LayerChart:
    base = alt.Chart(frame).encode(x=_epoch_axis())
    lines = base.mark_line(point=True).encode(
        y=_value_axis(metric),
        color=alt.Color("split:N", scale=scales[0], title="split", legend=LINE_LEGEND),
        strokeDash=alt.StrokeDash("split:N", scale=scales[1], title="split", legend=LINE_LEGEND),
        tooltip=[alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), _value_tooltip(metric)],
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
                     _value_tooltip(metric, title=f"{validation} {metric}")])
        layers += [rule, point]
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)


# -- Runs: several runs overlaid (compare) -------------------------------------------------
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
    tooltip = [alt.Tooltip("run:N"), alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"), _value_tooltip(metric)]
    smoothed = "raw" in frame.columns and not frame["raw"].equals(frame["value"])
    if smoothed:
        tooltip = tooltip[:3] + [_value_tooltip(metric, title="smoothed"), _value_tooltip(metric, "raw", "raw")]
    base = alt.Chart(frame).encode(x=_epoch_axis(), color=colour, detail="split:N")
    lines = base.mark_line().encode(y=_value_axis(metric), strokeDash=dash)
    # Points in a layer of their own: a line's point overlay would turn the split legend's
    # symbols into points, which have no colour there and so do not show.
    points = base.mark_circle(size=25, opacity=1).encode(y=_value_axis(metric), tooltip=tooltip)
    layers = [lines, points]
    if smoothed:
        layers.insert(0, base.mark_line(opacity=0.25).encode(y=_value_axis(metric, "raw"), strokeDash=dash))
    return alt.layer(*layers).properties(title=METRIC_TITLES[metric], width=PANEL_WIDTH, height=PANEL_HEIGHT)


# -- Search: each hyperparameter against accuracy -------------------------------------------
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


# -- Study: the comparisons the study drew ---------------------------------------------------
def study_comparison_chart(curves: pd.DataFrame, title: str) -> alt.ConcatChart:
    """Loss and accuracy per epoch of one comparison's settings (`study.comparison_curves`)."""
    return compare_chart(curves).properties(title=alt.TitleParams(title, anchor="start", fontSize=15))


def study_accuracy_chart(table: pd.DataFrame) -> alt.Chart:
    """The study's best test accuracy beside ours for each experiment (`study.study_frame`)."""
    long = table.melt(id_vars=["part", "experiment"], value_vars=["study accuracy", "our accuracy"],
                      var_name="source", value_name="accuracy").dropna(subset=["accuracy"])
    long["source"] = long["source"].str.replace(" accuracy", "", regex=False)
    order = list(dict.fromkeys(table["experiment"]))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("experiment:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
        yOffset=alt.YOffset("source:N", sort=["study", "our"]),
        x=alt.X("accuracy:Q", title="best test accuracy", axis=alt.Axis(format=".0%")),
        color=alt.Color("source:N", scale=alt.Scale(domain=["study", "our"], range=["#9e9e9e", "#d62728"]),
                        title=None, legend=alt.Legend(orient="top")),
        tooltip=["part:N", "experiment:N", "source:N", alt.Tooltip("accuracy:Q", format=".2%")],
    ).properties(width=PANEL_WIDTH + 120)
