"""What every chart shares: sizes, split colours and dashes, axis and tooltip helpers."""
from __future__ import annotations

import altair as alt
import pandas as pd

PANEL_WIDTH = 320  # px: two panels and their legend fit side by side even in a centred layout
PANEL_HEIGHT = 260
PANELS_PER_ROW = 2  # curve panels side by side; a third wraps below (three overflowed 940 px)
# A chart keeps the size its spec gives its plotting area, axes and title added around it.
# Streamlit's default for a single view, `fit`, squeezes everything into the element's box:
# a 160 px strip kept 40 px for its line. Drawn with st.altair_chart(..., width="content").
CONTENT_SIZED = alt.AutoSizeParams(type="pad", contains="padding")
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
AXIS_FORMATS = {"accuracy": "%", "loss": "", "within_superclass": "%"}
METRIC_TITLES = {"loss": "Loss (cross-entropy)", "accuracy": "Accuracy",
                 "within_superclass": "Errors inside the right superclass"}
METRICS = ("loss", "accuracy")
# Drawn beside METRICS when a run has them: fine runs record their within-superclass error share.
OPTIONAL_METRICS = ("within_superclass",)


def _splits_in(frame: pd.DataFrame) -> list[str]:
    """The splits the frame has, in SPLITS order; test and train when it has none (an empty chart)."""
    present = [split for split in SPLITS if split in set(frame["split"])]
    return present or ["test", "train"]


def split_scales(frame: pd.DataFrame) -> tuple[alt.Scale, alt.Scale]:
    """Colour and dash scales over the splits present, so a legend lists only those shown."""
    splits = _splits_in(frame)
    return (alt.Scale(domain=splits, range=[_SPLIT_COLOURS[s] for s in splits]),
            alt.Scale(domain=splits, range=[_SPLIT_DASHES[s] for s in splits]))


def epoch_axis() -> alt.X:
    # Whole epochs only: fractional ticks would suggest half-epochs were logged.
    return alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))


def value_axis(metric: str, field: str = "value") -> alt.Y:
    axis = alt.Axis(format=AXIS_FORMATS[metric]) if AXIS_FORMATS[metric] else alt.Axis()
    return alt.Y(f"{field}:Q", title=METRIC_TITLES[metric], scale=alt.Scale(zero=False), axis=axis)


def value_tooltip(metric: str, field: str = "value", title: str = "value") -> alt.Tooltip:
    return alt.Tooltip(f"{field}:Q", title=title, format=".4f" if metric == "loss" else ".2%")
