"""Run against run from stored predictions: McNemar's test, per-class differences, ensembles, calibration."""
import numpy as np
import pandas as pd
import pytest

from lsc_core import compare
from lsc_core.evaluate import EvaluationError, evaluate, make_result

# Reference p-values from scipy.stats (binomtest(b, b + c, 0.5) and chi2.sf(statistic, 1)), computed
# once; scipy is not a dependency of the dashboard.
EXACT = {(2, 8): 0.109375, (0, 3): 0.25, (10, 14): 0.5412561893463135, (0, 12): 0.00048828125, (5, 5): 1.0}
CHI_SQUARE = {(30, 50): 0.03364802587476163, (100, 140): 0.01182113783662232, (10, 15): 0.4237107971667936}


def test_mcnemar_matches_the_reference_p_values():
    for (b, c), expected in EXACT.items():
        assert expected == pytest.approx(compare.exact_binomial_p(b, c), rel=1e-9), (b, c)
    for (b, c), expected in CHI_SQUARE.items():
        assert expected == pytest.approx(compare.chi_square_p(b, c), rel=1e-9), (b, c)


def _correct(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    other = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(other)


def test_mcnemar_picks_the_exact_test_for_few_disagreements():
    assert compare.McNemar(2, 8, 0.109375, "exact binomial") == compare.mcnemar(*_correct(2, 8))
    test = compare.mcnemar(*_correct(30, 50))
    assert (30, 50, "chi-square (continuity corrected)") == (test.a_only, test.b_only, test.method)
    assert test.significant and not compare.mcnemar(*_correct(10, 15)).significant
    assert compare.McNemar(0, 0, 1.0, "none") == compare.mcnemar(*_correct(0, 0))
    assert "McNemar p = 0.0336" in test.describe() and "significant at 5%" in test.describe()


def test_a_p_value_too_small_for_a_float_reads_as_below_a_bound_never_zero():
    """4,000 images one run gets right and the other wrong, 100 the other way: the chi-square
    tail underflows to 0.0, which would read as certainty."""
    test = compare.mcnemar(*_correct(4000, 100))
    assert (0.0, True) == (test.p_value, test.significant)
    assert "< 1e-300" == test.p_text and "; McNemar p < 1e-300 (chi-square" in test.describe()
    assert "1.3e-05" == compare.mcnemar(*_correct(20, 60)).p_text  # small but representable: its value
    near_the_bound = compare.mcnemar(*_correct(1400, 0))  # about 6e-306: smaller still, so it reads the same
    assert (True, "< 1e-300") == (0 < near_the_bound.p_value < 1e-300, near_the_bound.p_text)


def _predictions(probabilities: np.ndarray, fine: np.ndarray, coarse: np.ndarray, mode: str) -> dict:
    return {"probabilities": probabilities.astype(np.float16), "fine": fine.astype(np.uint8),
            "coarse": coarse.astype(np.uint8), "label_mode": mode}


def _one_hot_probs(predicted: np.ndarray, n_classes: int, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1), dtype=np.float32)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def _coarse_run(predicted, truth, run_id, confidence=0.9):
    truth = np.asarray(truth)
    return evaluate(run_id, _predictions(_one_hot_probs(np.asarray(predicted), 20, confidence), truth * 5, truth,
                                         "coarse"))


def test_per_class_differences_sorted_with_a_p_value_each():
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    a = _coarse_run([0, 0, 0, 0, 3, 3, 3, 3, 2, 2], truth, 1)  # class 0 all right, class 1 all wrong
    b = _coarse_run([0, 3, 3, 3, 1, 1, 1, 1, 2, 2], truth, 2)  # the other way round
    comparison = compare.compare_runs(a, b, "coarse")
    assert (0.6, 0.7) == (comparison.accuracy_a, comparison.accuracy_b)
    expected = pd.DataFrame({"class": ["fish", "flowers", "aquatic_mammals"], "images": [4, 2, 4],
                             "accuracy_a": [0.0, 1.0, 1.0], "accuracy_b": [1.0, 1.0, 0.25],
                             "difference": [1.0, 0.0, -0.75], "p_value": [0.125, 1.0, 0.25]})
    pd.testing.assert_frame_equal(expected, comparison.per_class, check_dtype=False)
    assert compare.McNemar(3, 4, 1.0, "exact binomial") == comparison.test


def test_fine_runs_compare_at_both_levels_a_coarse_run_only_at_coarse():
    fine_truth = np.array([0, 1, 2, 3])
    fine = evaluate(1, _predictions(_one_hot_probs(fine_truth, 100), fine_truth, np.array([4, 1, 14, 8]), "fine"))
    coarse = _coarse_run([4, 1, 14, 0], np.array([4, 1, 14, 8]), 2)
    assert ["fine", "coarse"] == compare.levels(fine, fine) and ["coarse"] == compare.levels(fine, coarse)
    comparison = compare.compare_runs(fine, coarse, "coarse")  # the fine run's coarse result is derived
    assert (1.0, 0.75) == (comparison.accuracy_a, comparison.accuracy_b)
    with pytest.raises(EvaluationError, match="has no fine result"):
        compare.compare_runs(fine, coarse, "fine")


def test_runs_on_different_test_sets_are_refused():
    with pytest.raises(EvaluationError, match="different test sets"):
        compare.compare_runs(_coarse_run([0, 1], [0, 1], 1), _coarse_run([0, 1, 2], [0, 1, 2], 2), "coarse")


def test_an_ensemble_averages_probabilities_and_is_evaluated_like_a_run():
    truth = np.array([0, 1, 2, 3])
    p1 = np.array([[0.6, 0.4, 0, 0], [0.6, 0.4, 0, 0], [0, 0, 1, 0], [0, 0.3, 0, 0.7]])
    p2 = np.array([[0.45, 0.55, 0, 0], [0.1, 0.9, 0, 0], [0, 0.8, 0.2, 0], [0.1, 0, 0, 0.9]])
    padded = [np.pad(p, ((0, 0), (0, 16))) for p in (p1, p2)]
    runs = [evaluate(i, _predictions(p, truth * 5, truth, "coarse")) for i, p in enumerate(padded, start=1)]
    together = compare.ensemble(runs)
    assert [0, 1, 2, 3] == together.result.y_pred.tolist()  # alone, the runs get 3 and 2 of 4
    assert (1.0, 0.75, 0.5) == (together.result.top1, runs[0].result.top1, runs[1].result.top1)
    assert np.allclose((padded[0] + padded[1]) / 2, together.result.probabilities, atol=1e-3)
    with pytest.raises(EvaluationError, match="at least two runs"):
        compare.ensemble(runs[:1])
    fine = evaluate(3, _predictions(np.pad(p1, ((0, 0), (0, 96))), truth, truth, "fine"))
    with pytest.raises(EvaluationError, match="mix coarse and fine"):
        compare.ensemble([runs[0], fine])
    fine_ensemble = compare.ensemble([fine, fine])  # a fine ensemble has its coarse result derived too
    assert (fine.result.top1, fine.derived_coarse.top1) == (fine_ensemble.result.top1,
                                                            fine_ensemble.derived_coarse.top1)


def test_reliability_bins_and_expected_calibration_error():
    # Confidences 0.95 (4 images, 2 right) and 0.55 (2 images, both right), 10 bins.
    truth = np.array([0, 1, 2, 3, 4, 5])
    predicted = np.array([0, 1, 9, 9, 4, 5])
    probs = _one_hot_probs(predicted, 20, 0.95)
    probs[4:] = _one_hot_probs(predicted[4:], 20, 0.55)
    result = make_result("coarse", probs, truth)
    table = compare.reliability(result, bins=10)
    assert [0.5, 0.9] == table["bin_low"].round(2).tolist()
    assert [2, 4] == table["images"].tolist()
    assert [1.0, 0.5] == table["accuracy"].tolist()
    assert np.allclose([0.55, 0.95], table["confidence"])
    # ECE = 2/6 * |1 - 0.55| + 4/6 * |0.5 - 0.95| = 0.45
    assert 0.45 == pytest.approx(compare.expected_calibration_error(result, bins=10))
    stacked = compare.reliability_frame({"a": result, "b": result}, bins=10)
    assert ["a", "a", "b", "b"] == stacked["run"].tolist() and np.allclose(0.45, stacked["ece"])


def test_charts_of_the_comparison_and_the_reliability_diagram():
    from lsc_core import charts

    truth = np.array([0, 0, 1, 1])
    a, b = _coarse_run([0, 0, 3, 3], truth, 1), _coarse_run([0, 3, 1, 1], truth, 2)
    bars = charts.class_difference_bars(compare.compare_runs(a, b, "coarse").per_class, "#1 a", "#2 b").to_dict()
    assert ["fish", "aquatic_mammals"] == bars["encoding"]["x"]["sort"]
    assert ["#2 b", "#1 a", "same"] == bars["encoding"]["color"]["scale"]["domain"]
    diagram = charts.reliability_diagram(compare.reliability_frame({"#1 a": a.result, "#2 b": b.result})).to_dict()
    diagonal, curves = diagram["layer"]
    assert ("confidence", "accuracy") == (curves["encoding"]["x"]["field"], curves["encoding"]["y"]["field"])
    legends = {row["legend"] for row in diagram["datasets"][curves["data"]["name"]]}
    assert {"#1 a (ECE 40.0%)", "#2 b (ECE 15.0%)"} == legends
    # Sized to their content: axes, names and legends around the plot, never cut at its edge.
    assert ["pad", "pad"] == [chart["autosize"]["type"] for chart in (bars, diagram)]


def test_an_ensemble_starts_with_this_run_and_one_of_the_same_label_mode():
    assert [3, 5] == compare.default_members(3, 5, [7, 5, 3])
    assert [3, 7] == compare.default_members(3, 9, [7, 5, 3])  # run 9 has the other label mode
    assert [3] == compare.default_members(3, 9, [3])
