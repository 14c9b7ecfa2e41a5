"""charts: the Runs page's charts (lsc_core.charts.training) as Vega-Lite specs built from curves of a real store."""
import pytest

from lsc_core import charts, views
from lsc_core.config import preset
from lsc_core.store import COMPLETED, RUNNING


@pytest.fixture
def two_runs(store):
    ids = []
    for name, accuracies in (("adam", (0.30, 0.42, 0.40)), ("sgd", (0.25, 0.33, 0.37))):
        run_id = store.create_run(preset("seed-part1", epochs=3, name=name), status=RUNNING)
        for epoch, acc in enumerate(accuracies, start=1):
            store.log_epoch(run_id, epoch, {"loss": 2.0 / epoch, "accuracy": acc + 0.1, "val_loss": 2.2 / epoch,
                                            "val_accuracy": acc}, 1.0)
        store.finish_run(run_id, COMPLETED)
        ids.append(run_id)
    return ids


def layers_of(panel):
    return panel["layer"]


def test_run_chart_has_loss_and_accuracy_panels_with_train_and_test_lines(store, two_runs):
    run = store.get_run(two_runs[0])
    spec = charts.run_curves_chart(views.curves(store, [run.id]), run.best_epoch).to_dict()
    panels = spec["concat"]
    assert (2, "pad") == (spec["columns"], spec["autosize"]["type"])  # two a row, kept at their size
    assert ["Loss (cross-entropy)", "Accuracy"] == [p["title"] for p in panels]
    for panel in panels:
        lines, rule, point = layers_of(panel)
        assert ("line", "split", "epoch") == (lines["mark"]["type"], lines["encoding"]["color"]["field"],
                                              lines["encoding"]["x"]["field"])
        assert ["test", "train"] == lines["encoding"]["color"]["scale"]["domain"]
        assert ["split", "epoch", "value"] == [t["field"] for t in lines["encoding"]["tooltip"]]
        assert "rule" == rule["mark"]["type"]
        assert "point" == point["mark"]["type"]
    datasets = spec["datasets"]
    rule_data = datasets[panels[1]["layer"][1]["data"]["name"]]
    point_data = datasets[panels[1]["layer"][2]["data"]["name"]]
    assert [{"epoch": 2}] == rule_data
    assert [(2, "test", "accuracy", 0.42)] == [(r["epoch"], r["split"], r["metric"], r["value"]) for r in point_data]


def test_run_chart_without_best_epoch_has_only_lines(store):
    run_id = store.create_run(preset("seed-part1", epochs=2), status=RUNNING)
    store.log_epoch(run_id, 1, {"loss": 2.0, "accuracy": 0.2}, 1.0)  # no validation yet: no best epoch
    spec = charts.run_curves_chart(views.curves(store, [run_id]), None).to_dict()
    assert [1, 1] == [len(p["layer"]) for p in spec["concat"]]


def test_compare_chart_colours_runs_and_dashes_train(store, two_runs):
    frame = views.curves(store, list(reversed(two_runs)))
    spec = charts.compare_chart(frame).to_dict()
    for panel in spec["hconcat"]:
        lines, points = layers_of(panel)
        assert ("line", "circle") == (lines["mark"]["type"], points["mark"]["type"])
        encoding = lines["encoding"]
        assert ("run", ["sgd", "adam"]) == (encoding["color"]["field"], encoding["color"]["scale"]["domain"])
        assert ("split", ["test", "train"]) == (encoding["strokeDash"]["field"],
                                                encoding["strokeDash"]["scale"]["domain"])
        assert [[1, 0], [5, 4]] == encoding["strokeDash"]["scale"]["range"]  # test solid, train dashed


def test_compare_chart_draws_raw_lines_beneath_smoothed_ones(store, two_runs):
    frame = views.smooth_curves(views.curves(store, two_runs), 0.8)
    spec = charts.compare_chart(frame).to_dict()
    raw, smoothed, points = layers_of(spec["hconcat"][1])
    assert ("raw", 0.25) == (raw["encoding"]["y"]["field"], raw["mark"]["opacity"])
    assert ("value", "value") == (smoothed["encoding"]["y"]["field"], points["encoding"]["y"]["field"])
    assert ["run", "split", "epoch", "value", "raw"] == [t["field"] for t in points["encoding"]["tooltip"]]
    # Legends are drawn from the first (faint) layer: their symbols must not take its opacity.
    assert (1, 1) == (raw["encoding"]["color"]["legend"]["symbolOpacity"],
                      raw["encoding"]["strokeDash"]["legend"]["symbolOpacity"])
    panel = spec["hconcat"][1]
    values = spec["datasets"][(panel.get("data") or smoothed["data"])["name"]]
    adam_test_acc = [r["value"] for r in values if r["run"] == "adam" and r["split"] == "test"
                     and r["metric"] == "accuracy"]
    assert pytest.approx(views.smooth([0.30, 0.42, 0.40], 0.8)) == adam_test_acc


def test_compare_chart_can_show_one_split(store, two_runs):
    spec = charts.compare_chart(views.curves(store, two_runs), splits=("test",)).to_dict()
    rows = [r for values in spec["datasets"].values() for r in values]
    assert {"test"} == {r["split"] for r in rows}


def test_value_axes_format_with_the_precision_the_ticks_need(store, two_runs):
    # A fixed ".0%" printed "8%, 8%, 9%, 9%" for a narrow accuracy range; "%" without a
    # precision lets Vega choose the digits from the tick step (likewise the loss default).
    for panels in (charts.run_curves_chart(views.curves(store, two_runs[:1]), 2).to_dict()["concat"],
                   charts.compare_chart(views.curves(store, two_runs)).to_dict()["hconcat"]):
        loss, accuracy = (panel["layer"][0]["encoding"]["y"] for panel in panels)
        assert ("%", None) == (accuracy["axis"]["format"], loss.get("axis", {}).get("format"))


def test_compare_legends_show_line_symbols_for_runs_and_splits(store, two_runs):
    lines, points = charts.compare_chart(views.curves(store, two_runs)).to_dict()["hconcat"][0]["layer"]
    run_legend, split_legend = lines["encoding"]["color"]["legend"], lines["encoding"]["strokeDash"]["legend"]
    assert ("stroke", "stroke") == (run_legend["symbolType"], split_legend["symbolType"])
    # The split legend has no colour scale of its own: it needs a stroke colour, and no point
    # overlay on its lines (that turns its symbols into colourless points: only text showed).
    assert "#555555" == split_legend["symbolStrokeColor"]
    assert ("point" not in lines["mark"], "strokeDash" not in points["encoding"]) == (True, True)
    assert "symbolStrokeColor" not in run_legend  # run symbols take their colour from the run scale


def test_a_hold_out_run_shows_its_hold_out_split_with_its_own_colour(store, two_runs):
    held = store.create_run(preset("seed-part1", epochs=2, validation="holdout", name="held"), status=RUNNING)
    for epoch, acc in enumerate((0.31, 0.35), start=1):
        store.log_epoch(held, epoch, {"loss": 2.0, "accuracy": acc + 0.1, "val_loss": 2.1, "val_accuracy": acc}, 1.0)
    store.finish_run(held, COMPLETED)
    spec = charts.run_curves_chart(views.curves(store, [held]), 2).to_dict()
    for panel in spec["concat"]:
        lines, _, point = layers_of(panel)
        scale = lines["encoding"]["color"]["scale"]
        assert (["hold-out", "train"], ["#ff7f0e", "#1f77b4"]) == (scale["domain"], scale["range"])
        assert ["hold-out", "train"] == lines["encoding"]["strokeDash"]["scale"]["domain"]
    accuracy_point = spec["concat"][1]["layer"][2]
    assert [(2, "hold-out", 0.35)] == [(r["epoch"], r["split"], r["value"])
                                       for r in spec["datasets"][accuracy_point["data"]["name"]]]
    assert "hold-out accuracy" == accuracy_point["encoding"]["tooltip"][1]["title"]
    # Compared with a test-set run: "test" (the Runs page's choice) shows both validation splits.
    spec = charts.compare_chart(views.curves(store, [two_runs[0], held]), splits=("test",)).to_dict()
    rows = [r for values in spec["datasets"].values() for r in values]
    assert {("adam", "test"), ("held", "hold-out")} == {(r["run"], r["split"]) for r in rows}
    dash = spec["hconcat"][0]["layer"][0]["encoding"]["strokeDash"]["scale"]
    assert (["test", "hold-out"], [[1, 0], [1, 0]]) == (dash["domain"], dash["range"])


def test_search_parallel_coordinates_place_each_setting_on_its_own_axis():
    import pandas as pd

    results = pd.DataFrame({"trial": [1, 2, 3, 4], "conv1_filters": [16, 32, 64, 32],
                            "optimizer": ["sgd", "adam", "adam", "rmsprop"],
                            "learning_rate": [1e-4, 1e-3, 1e-2, None],
                            "best test accuracy": [0.30, 0.50, 0.40, None]})  # trial 4: no accuracy yet
    spec = charts.search_parallel_chart(results, ["conv1_filters", "optimizer", "learning_rate"]).to_dict()
    rules, lines, labels = spec["layer"]
    assert ["conv1_filters", "optimizer", "learning_rate", "best test accuracy"] == lines["encoding"]["x"]["sort"]
    points = {(row["trial"], row["axis"]): row["position"] for row in spec["datasets"][lines["data"]["name"]]}
    assert {1, 2, 3} == {trial for trial, _ in points}
    def axis(name):
        return [points[trial, name] for trial in (1, 2, 3)]

    assert pytest.approx([0.0, 1 / 3, 1.0]) == axis("conv1_filters")  # 16, 32, 64: linear
    assert pytest.approx([0.0, 0.5, 1.0]) == axis("learning_rate")  # 1e-4, 1e-3, 1e-2: log10 spacing
    assert [1.0, 0.0, 0.0] == axis("optimizer")  # sgd, adam, adam: words in sorted order
    assert pytest.approx([0.0, 1.0, 0.5]) == axis("best test accuracy")
    shown = {(row["axis"], row["value"]) for row in spec["datasets"][labels["data"]["name"]]}
    assert {("optimizer", "adam"), ("optimizer", "sgd"), ("learning_rate", "0.0001"),
            ("learning_rate", "0.01")} <= shown
def test_learning_rate_chart_steps_through_each_epochs_rate(store):
    run_id = store.create_run(preset("seed-part1", epochs=3), status=RUNNING)
    for epoch, rate in enumerate((1e-3, 1e-4, 1e-5), start=1):
        store.log_epoch(run_id, epoch, {"loss": 1.0, "val_accuracy": 0.1, "learning_rate": rate}, 1.0)
    frame = views.learning_rates(store, run_id)
    assert [(1, 1e-3), (2, 1e-4), (3, 1e-5)] == list(frame.itertuples(index=False, name=None))
    spec = charts.learning_rate_chart(frame).to_dict()
    assert ("Learning rate", "step-after", True) == (spec["title"], spec["mark"]["interpolate"],
                                                       spec["encoding"]["y"]["scale"]["zero"])
    # Its plotting area keeps its height (Streamlit's default `fit` left a 40 px line in a 160 px box).
    assert ("pad", charts.recipe.LR_HEIGHT) == (spec["autosize"]["type"], spec["height"])


def test_schedule_chart_draws_the_curve_and_marks_each_epochs_start():
    from lsc_core import editor

    frame = editor.schedule_frame(preset("seed-part1", epochs=4, schedule="cosine", warmup_epochs=1))
    spec = charts.schedule_chart(frame).to_dict()
    line, starts = spec["layer"]
    assert ("line", "point") == (line["mark"]["type"], starts["mark"]["type"])
    assert "pad" == spec["autosize"]["type"]
    assert [1.0, 2.0, 3.0, 4.0] == [row["epoch"] for row in spec["datasets"][starts["data"]["name"]]]
    assert ({"tickMinStep": 1, "format": "d"}.items() <= line["encoding"]["x"]["axis"].items())  # no "1.5" ticks
    assert editor.schedule_frame(preset("seed-part1", epochs=2, warmup_epochs=2)) is None  # refused settings
