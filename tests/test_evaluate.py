"""Evaluation: confusion arithmetic on hand-computed cases, stored predictions of real tiny runs."""
import altair as alt
import numpy as np
import pytest

from lsc_core import charts, evaluate as ev
from lsc_core.config import LayerSpec, RunConfig
from lsc_core.data import FINE_LABELS, FINE_TO_COARSE
from lsc_core.store import FAILED, INTERRUPTED, RUNNING, STOPPED, Store
from lsc_core.train import train_run

SMALL = (LayerSpec.make("conv2d", filters=8), LayerSpec.make("maxpool2d", pool_size=4),
         LayerSpec.make("flatten"), LayerSpec.make("dense", units=32))


# -- arithmetic, by hand ------------------------------------------------------------------------
def test_confusion_counts_rows_true_columns_predicted():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2])
    assert [[1, 2, 0], [0, 1, 1], [0, 0, 1]] == ev.confusion_matrix(y_true, y_pred, 3).tolist()


def test_row_normalisation_leaves_empty_rows_at_zero():
    confusion = np.array([[1, 3], [0, 0]])
    assert [[0.25, 0.75], [0.0, 0.0]] == ev.row_normalise(confusion).tolist()


def test_top_k_accuracy():
    probs = np.array([[0.5, 0.3, 0.2, 0.0],   # true 1: second -> top-2 yes, top-1 no
                      [0.1, 0.2, 0.3, 0.4],   # true 3: first
                      [0.4, 0.3, 0.2, 0.1]])  # true 3: last -> only top-4
    y = np.array([1, 3, 3])
    assert [1 / 3, 2 / 3, 2 / 3, 1.0] == pytest.approx([ev.top_k_accuracy(probs, y, k) for k in (1, 2, 3, 4)])
    assert 1.0 == ev.top_k_accuracy(probs, y, 9)  # k above the class count means every class


def test_coarse_from_fine_sums_within_superclass():
    mapping = [0, 0, 1, 2, 1]  # five fine classes in three superclasses
    probs = np.array([[0.1, 0.2, 0.3, 0.15, 0.25]])
    assert [0.3, 0.55, 0.15] == pytest.approx(ev.coarse_from_fine(probs, mapping)[0].tolist())


def test_official_coarse_from_fine_keeps_probability_mass():
    probs = np.random.default_rng(0).dirichlet(np.ones(100), size=7)
    coarse = ev.coarse_from_fine(probs)
    assert (7, 20) == coarse.shape
    assert np.allclose(coarse.sum(axis=1), 1.0, atol=1e-5)
    # apple (0) and mushroom (51) are both fruit_and_vegetables (4)
    one = np.zeros((1, 100))
    one[0, [0, 51]] = 0.5
    assert 1.0 == pytest.approx(ev.coarse_from_fine(one)[0, 4])


def test_within_superclass_error_share():
    mapping = [0, 0, 1, 1]
    y_true = np.array([0, 0, 2, 2, 3, 1])
    y_pred = np.array([0, 1, 3, 0, 3, 2])  # errors: 0->1 (inside), 2->3 (inside), 2->0 (outside), 1->2 (outside)
    assert 0.5 == ev.within_superclass_error_share(y_true, y_pred, mapping)
    assert np.isnan(ev.within_superclass_error_share(y_true, y_true, mapping))


def test_most_confused_pairs_and_per_class_accuracy():
    confusion = np.array([[5, 3, 0], [1, 2, 4], [0, 0, 0]])
    assert [(1, 2, 4), (0, 1, 3), (1, 0, 1)] == ev.most_confused_pairs(confusion, 5)
    accuracy = ev.per_class_accuracy(confusion)
    assert [5 / 8, 2 / 7] == pytest.approx(accuracy[:2].tolist())
    assert np.isnan(accuracy[2])


def test_fine_display_order_groups_superclasses_in_blocks_of_five():
    order = ev.display_order("fine")
    assert sorted(order) == list(range(100))
    blocks = [[FINE_TO_COARSE[c] for c in order[i:i + 5]] for i in range(0, 100, 5)]
    assert [[s] * 5 for s in range(20)] == blocks
    assert ["beaver", "dolphin", "otter", "seal", "whale"] == [FINE_LABELS[c] for c in order[:5]]
    assert list(range(20)) == ev.display_order("coarse")


def _fine_predictions():
    """Four test images of a fine run, probabilities chosen by hand."""
    probs = np.zeros((4, 100), dtype=np.float16)
    probs[0, [0, 51]] = [0.6, 0.4]  # apple, right
    probs[1, [51, 0]] = [0.7, 0.3]  # apple -> mushroom: wrong, same superclass; top-2 right
    probs[2, [3, 4]] = [0.9, 0.1]   # beaver -> bear: wrong superclass
    probs[3, [55, 4]] = [0.5, 0.5]  # beaver tied with otter: argmax takes the lower index, beaver: right
    fine = np.array([0, 0, 4, 4])
    return {"probabilities": probs, "fine": fine, "coarse": np.asarray(FINE_TO_COARSE)[fine], "label_mode": "fine"}


def test_evaluation_of_a_fine_run_derives_the_coarse_result():
    evaluation = ev.evaluate(7, _fine_predictions())
    result, coarse = evaluation.result, evaluation.derived_coarse
    assert [0, 51, 3, 4] == result.y_pred.tolist()
    assert (0.5, 1.0, 0.01) == (result.top1, result.top5, result.baseline)  # each true class is 1st or 2nd
    assert 0.5 == evaluation.within_superclass  # of the two fine errors one stays in fruit_and_vegetables
    assert [4, 4, 8, 0] == coarse.y_pred.tolist()  # beaver's 0.9 on bear -> large_carnivores
    assert (0.75, 0.05) == (coarse.top1, coarse.baseline)
    assert {(4, 4): 2, (0, 8): 1, (0, 0): 1} == {tuple(map(int, ij)): int(coarse.confusion[tuple(ij)])
                                                 for ij in np.argwhere(coarse.confusion)}
    summary = ev.summary(evaluation)
    assert (0.75, 0.5) == (summary["coarse_top1"], summary["within_superclass"])
    assert ([("apple", 0.5), ("beaver", 0.5)], [("beaver", 0.5), ("apple", 0.5)]) == (summary["best"],
                                                                                    summary["worst"])


def test_frames_for_charts():
    result = ev.evaluate(1, _fine_predictions()).result
    frame = ev.confusion_frame(result)
    assert 10_000 == len(frame)
    cell = frame[(frame["true"] == "apple") & (frame["predicted"] == "mushroom")].iloc[0]
    assert (1, 0.5) == (cell["count"], cell["share"])
    assert ev.display_order("fine").index(0) == cell["true_rank"]
    assert [{"true": "apple", "predicted": "mushroom", "count": 1, "share": 0.5},
            {"true": "beaver", "predicted": "bear", "count": 1, "share": 0.5}] == \
        ev.confused_pairs_frame(result, 5)[["true", "predicted", "count", "share"]].to_dict("records")
    classes = ev.per_class_frame(result)
    assert ["apple", "beaver"] == list(classes["class"])  # classes without test images are left out
    assert ["fruit_and_vegetables", "aquatic_mammals"] == list(classes["superclass"])
    wrong = ev.misclassified(result)
    assert [2, 1] == wrong.tolist()  # most confident mistake first
    assert [1] == ev.misclassified(result, predicted_class=51).tolist()
    assert [] == ev.misclassified(result, true_class=4, predicted_class=51).tolist()


def test_gallery_refuses_a_different_test_set():
    result = ev.evaluate(1, _fine_predictions()).result
    images = np.arange(4 * 32 * 32 * 3, dtype=np.uint8).reshape(4, 32, 32, 3)
    pictures, captions = ev.gallery(result, images, np.array([2]))
    assert (images[2] == pictures[0]).all()
    assert ["beaver → bear (90%)"] == captions
    with pytest.raises(ev.EvaluationError, match="has 3 images but this run was evaluated on 4"):
        ev.gallery(result, images[:3], np.array([2]))


def test_charts_encode_true_predicted_and_tooltips():
    evaluation = ev.evaluate(1, _fine_predictions())
    coarse = evaluation.derived_coarse
    spec = charts.confusion_heatmap(ev.confusion_frame(coarse), ev.class_names_in_order("coarse"), normalised=True).to_dict()
    (cells,) = spec["layer"]  # 20 classes: every column name fits below its column
    assert ("predicted", "true", "share") == (cells["encoding"]["x"]["field"], cells["encoding"]["y"]["field"],
                                              cells["encoding"]["color"]["field"])
    assert ["true", "predicted", "count", "share"] == [t["field"] for t in cells["encoding"]["tooltip"]]
    assert list(ev.class_names_in_order("coarse")) == cells["encoding"]["x"]["sort"]
    with alt.data_transformers.disable_max_rows():
        fine = charts.confusion_heatmap(ev.confusion_frame(evaluation.result), ev.class_names_in_order("fine"),
                                        normalised=False).to_dict()
    assert ("count", 750, 1100) == (fine["layer"][0]["encoding"]["color"]["field"], fine["width"], fine["height"])
    bars = charts.per_class_bars(ev.per_class_frame(evaluation.result), 0.01).to_dict()
    assert "rule" == bars["layer"][1]["mark"]["type"]


@pytest.mark.parametrize("mode", ["coarse", "fine"])
def test_heatmap_names_every_class_without_overlap_and_fits_the_main_column(mode):
    """Text no taller than its row; column names no closer than their height (alternating
    bottom/top at 100 classes); the matrix with its names inside the main column at 1400 px."""
    order = ev.class_names_in_order(mode)
    frame = ev.confusion_frame(ev.make_result(mode, np.eye(len(order))[:len(order)], np.arange(len(order))))
    with alt.data_transformers.disable_max_rows():
        spec = charts.confusion_heatmap(frame, order, normalised=True).to_dict()
    x_axes = [layer["encoding"]["x"]["axis"] for layer in spec["layer"]]
    y_axis = spec["layer"][0]["encoding"]["y"]["axis"]
    shown = [name for axis in x_axes for name in axis["values"]]
    assert sorted(order) == sorted(shown)  # every class named once across the column axes
    row_px, column_px = spec["height"] / len(order), spec["width"] / len(order)
    label_pitch_px = column_px * len(x_axes)  # distance between neighbouring names on one side
    assert y_axis["labelFontSize"] <= row_px and x_axes[0]["labelFontSize"] + 2 <= label_pitch_px
    assert all(axis["labelOverlap"] is False for axis in [*x_axes, y_axis])
    widest_name_px = 0.6 * y_axis["labelFontSize"] * max(map(len, order))  # a generous average glyph width
    assert spec["width"] + widest_name_px <= charts.evaluate.MAIN_COLUMN_PX
    # Only cells with images travel to the browser (here the diagonal); every class keeps its place.
    cell_rows = [rows for rows in spec["datasets"].values() if rows and "count" in rows[0]]
    assert [len(order)] == [len(rows) for rows in cell_rows]
    assert list(order) == spec["layer"][0]["encoding"]["y"]["scale"]["domain"]
    # No colour range of our own: the Streamlit theme's ramp, which follows light and dark.
    assert "range" not in spec["layer"][0]["encoding"]["color"]["scale"]


# -- real tiny runs -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A store with a fine run evaluated by the trainer's hook and a coarse run trained without it."""
    store = Store(tmp_path_factory.mktemp("eval") / "runs.sqlite")
    config = RunConfig(layers=SMALL, epochs=2, batch_size=32, learning_rate=3e-3, name="small")
    fine = store.create_run(config.replace(label_mode="fine"), status=RUNNING)
    train_run(store, fine, load_data=lambda: tiny_data, after_training=ev.store_predictions)
    coarse = store.create_run(config.replace(label_mode="coarse", epochs=1), status=RUNNING)
    train_run(store, coarse, load_data=lambda: tiny_data)
    return store, fine, coarse


def test_the_training_hook_stores_the_best_models_test_predictions(trained, tiny_data):
    store, fine, _ = trained
    stored = store.load_predictions(fine)
    assert ((100, 100), "fine", np.float16) == (stored["probabilities"].shape, stored["label_mode"],
                                                stored["probabilities"].dtype)
    assert (tiny_data.y_test_fine == stored["fine"]).all() and (tiny_data.y_test_coarse == stored["coarse"]).all()
    evaluation = ev.evaluate_run(store, fine)
    # The stored predictions are the best epoch's: same accuracy as the run recorded (float16 aside).
    assert store.get_run(fine).best_val_accuracy == pytest.approx(evaluation.result.top1, abs=0.011)
    assert 0 <= evaluation.derived_coarse.top1 <= 1 and evaluation.result.top1 <= evaluation.result.top5


def test_an_older_run_is_predicted_on_first_request_from_its_saved_model(trained, tiny_data):
    store, _, coarse = trained
    assert store.load_predictions(coarse) is None
    evaluation = ev.evaluate_run(store, coarse, load_data=lambda: tiny_data)
    assert (None, "coarse", (100, 20)) == (evaluation.derived_coarse, evaluation.result.label_mode,
                                           store.load_predictions(coarse)["probabilities"].shape)
    assert store.get_run(coarse).best_val_accuracy == pytest.approx(evaluation.result.top1, abs=0.011)
    assert {fine_id for fine_id in (trained[1], coarse)} == {run.id for run in ev.evaluable_runs(store)}


def test_a_run_without_a_model_says_so(trained):
    store = trained[0]
    queued = store.create_run(RunConfig(layers=SMALL, name="never-ran"))
    with pytest.raises(ev.EvaluationError, match="has no saved model"):
        ev.evaluate_run(store, queued)
    with pytest.raises(ev.EvaluationError, match="does not exist"):
        ev.evaluate_run(store, 999)


def test_a_stopped_or_interrupted_run_with_a_model_is_evaluated_like_a_completed_one(trained, tiny_data):
    store, fine, _ = trained
    model_path = store.get_run(fine).model_path
    ids = {}
    for status in (STOPPED, INTERRUPTED, FAILED):
        ids[status] = store.create_run(RunConfig(layers=SMALL, label_mode="fine", name=status), status=RUNNING)
        store.set_model_path(ids[status], model_path)  # its best epoch's model, saved before it ended
        store.finish_run(ids[status], status)
    evaluable = {run.id for run in ev.evaluable_runs(store)}
    assert {ids[STOPPED], ids[INTERRUPTED]} <= evaluable and ids[FAILED] not in evaluable
    evaluation = ev.evaluate_run(store, ids[STOPPED], load_data=lambda: tiny_data)
    assert (100, 100) == evaluation.result.probabilities.shape


def test_one_superclass_as_a_5x5_confusion_with_its_inside_mistakes():
    fish = ev.superclass_members(1)  # aquarium_fish, flatfish, ray, shark, trout
    assert ["aquarium_fish", "flatfish", "ray", "shark", "trout"] == ev.superclass_names(1)
    truth = np.array([fish[0]] * 4 + [fish[1]] * 2)
    predicted = np.array([fish[0], fish[2], fish[2], 0, fish[1], fish[0]])  # 0 (apple) is outside
    probabilities = np.full((6, 100), 0.001, dtype=np.float32)
    probabilities[np.arange(6), predicted] = [0.9, 0.5, 0.8, 0.6, 0.7, 0.4]
    result = ev.make_result("fine", probabilities, truth)
    frame = ev.superclass_confusion_frame(result, 1)
    assert (25, ["aquarium_fish"] * 5) == (len(frame), frame["true"][:5].tolist())
    assert [1, 0, 2, 0, 0] == frame["count"][:5].tolist()
    assert [0.25, 0.0, 0.5, 0.0, 0.0] == frame["share"][:5].tolist()
    assert [0.25, 0.0] == [frame["outside"][0], frame["outside"][5]]  # one aquarium fish went to apple
    assert [2, 1, 5] == ev.superclass_mistakes(result, 1).tolist()  # wrong inside fish, most confident first
