"""Run against run, from stored test-set predictions: nothing is retrained or re-predicted.

- `compare_runs`: per-class accuracy of run A and run B at one label level (fine, or
  coarse: a fine run's coarse result is derived from its fine probabilities), sorted by
  the difference, with McNemar's test on the whole test set and on each class.
- `ensemble`: the average of the stored probabilities of runs with the same label mode,
  evaluated like any run (accuracy, top-5, confusion).
- `reliability` / `expected_calibration_error`: how far a run's confidence is from its
  accuracy.

McNemar's test looks only at the images the two runs disagree on: b = A right and B
wrong, c = A wrong and B right. With no difference between the runs, each such image is
a fair coin, so b ~ Binomial(b + c, 1/2). Few discordant images (b + c < 25): the exact
two-sided binomial p-value. More: the chi-square statistic with continuity correction,
(|b - c| - 1)^2 / (b + c), on one degree of freedom, whose survival function is
erfc(sqrt(x / 2)). Both need only `math`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .evaluate import Evaluation, EvaluationError, Result, evaluate, per_class_accuracy

EXACT_BELOW = 25  # discordant pairs under which the exact binomial test is used (the usual rule)
SIGNIFICANCE = 0.05
SMALLEST_P_SHOWN = 1e-300  # p-values below it, 0.0 from an underflow among them, read "< 1e-300"
CALIBRATION_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017


# -- McNemar's test (pure) -------------------------------------------------------------------
@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers on the same images."""

    a_only: int  # images A gets right and B gets wrong (b)
    b_only: int  # images B gets right and A gets wrong (c)
    p_value: float
    method: str  # "exact binomial" or "chi-square (continuity corrected)"; "none" when they never disagree

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE

    @property
    def p_text(self) -> str:
        """The p-value as shown: '0.0336', '2.1e-45', or '< 1e-300' below that bound, where the
        chi-square tail nears what a float can hold and then underflows to 0.0 (a few thousand
        discordant images one way). Never '0', and a more extreme result never reads larger."""
        return f"{self.p_value:.3g}" if self.p_value >= SMALLEST_P_SHOWN else f"< {SMALLEST_P_SHOWN:.0e}"

    def describe(self) -> str:
        """'B is right on 40 images A gets wrong, A on 25 the other way; p = 0.082 (chi-square ...): not significant'."""
        verdict = "significant at 5%" if self.significant else "not significant at 5%"
        p = f"p {self.p_text}" if self.p_value < SMALLEST_P_SHOWN else f"p = {self.p_text}"
        return (f"B right where A is wrong on {self.b_only} images, A right where B is wrong on {self.a_only}; "
                f"McNemar {p} ({self.method}): {verdict}")


def exact_binomial_p(b: int, c: int) -> float:
    """Two-sided p-value of b successes in b + c fair coin tosses (doubling the smaller tail)."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def chi_square_p(b: int, c: int) -> float:
    """p-value of McNemar's chi-square with continuity correction (1 degree of freedom)."""
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return math.erfc(math.sqrt(statistic / 2.0))


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's test from two boolean arrays: which images each classifier got right."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    b, c = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    if b + c == 0:
        return McNemar(b, c, 1.0, "none")
    if b + c < EXACT_BELOW:
        return McNemar(b, c, exact_binomial_p(b, c), "exact binomial")
    return McNemar(b, c, chi_square_p(b, c), "chi-square (continuity corrected)")


# -- run against run ---------------------------------------------------------------------------
def levels(a: Evaluation, b: Evaluation) -> list[str]:
    """The label levels both runs can be compared at: coarse always, fine when both are fine runs."""
    both_fine = a.result.label_mode == b.result.label_mode == "fine"
    return ["fine", "coarse"] if both_fine else ["coarse"]


def result_at(evaluation: Evaluation, level: str) -> Result:
    """A run's result at `level`: its own, or for a fine run at coarse level the derived one."""
    if evaluation.result.label_mode == level:
        return evaluation.result
    if level == "coarse" and evaluation.derived_coarse is not None:
        return evaluation.derived_coarse
    raise EvaluationError(f"run {evaluation.run_id} is a {evaluation.result.label_mode} run: it has no {level} "
                          "result")


@dataclass(frozen=True, eq=False)
class Comparison:
    """Run A against run B at one level: the overall test and a per-class table."""

    level: str
    accuracy_a: float
    accuracy_b: float
    test: McNemar
    per_class: pd.DataFrame  # class, images, accuracy_a, accuracy_b, difference (B - A), p_value; by difference


def compare_runs(a: Evaluation, b: Evaluation, level: str) -> Comparison:
    """Per-class accuracy of A and B at `level` (fine or coarse) with McNemar's test, overall and per class.

    Both runs must have been evaluated on the same test images (same labels in the same order).
    """
    result_a, result_b = result_at(a, level), result_at(b, level)
    if not np.array_equal(result_a.y_true, result_b.y_true):
        raise EvaluationError(f"runs {a.run_id} and {b.run_id} were evaluated on different test sets "
                              f"({len(result_a.y_true):,} and {len(result_b.y_true):,} images): they cannot be "
                              "compared image by image")
    right_a, right_b = result_a.y_pred == result_a.y_true, result_b.y_pred == result_b.y_true
    tests = [mcnemar(right_a[result_a.y_true == k], right_b[result_a.y_true == k])
             for k in range(len(result_a.names))]
    frame = pd.DataFrame({
        "class": result_a.names, "images": result_a.confusion.sum(axis=1),
        "accuracy_a": per_class_accuracy(result_a.confusion), "accuracy_b": per_class_accuracy(result_b.confusion),
        "p_value": [t.p_value for t in tests]})
    frame["difference"] = frame["accuracy_b"] - frame["accuracy_a"]
    frame = frame[frame["images"] > 0]
    frame = frame.sort_values(["difference", "class"], ascending=[False, True], kind="stable")
    columns = ["class", "images", "accuracy_a", "accuracy_b", "difference", "p_value"]
    return Comparison(level, result_a.top1, result_b.top1, mcnemar(right_a, right_b),
                      frame[columns].reset_index(drop=True))


# -- ensembles ---------------------------------------------------------------------------------
def _coarse_labels(evaluation: Evaluation) -> np.ndarray:
    return (evaluation.derived_coarse or evaluation.result).y_true


def default_members(run_id: int, other_id: int | None, same_mode: list[int]) -> list[int]:
    """The runs an ensemble starts with: this run and the one compared with when it has the same
    label mode, else this run and the newest other run of its label mode (`same_mode`, in order)."""
    partner = other_id if other_id in same_mode and other_id != run_id else next(
        (i for i in same_mode if i != run_id), None)
    return [run_id] if partner is None else [run_id, partner]


def ensemble(evaluations: list[Evaluation], run_id: int = 0) -> Evaluation:
    """Runs of one label mode averaged: the mean of their stored probabilities, evaluated like any
    single run (accuracy, top-5, confusion, derived coarse). `run_id` 0: not a stored run."""
    if len(evaluations) < 2:
        raise EvaluationError("an ensemble needs at least two runs")
    modes = {e.result.label_mode for e in evaluations}
    if len(modes) > 1:
        raise EvaluationError(f"an ensemble averages runs of one label mode; these mix {' and '.join(sorted(modes))}")
    first = evaluations[0]
    for other in evaluations[1:]:
        if not (np.array_equal(first.result.y_true, other.result.y_true)
                and np.array_equal(_coarse_labels(first), _coarse_labels(other))):
            raise EvaluationError(f"runs {first.run_id} and {other.run_id} were evaluated on different test sets: "
                                  "their predictions cannot be averaged image by image")
    mode = modes.pop()
    # Averaged in float32: the stored float16 would lose precision over many runs.
    mean = np.mean([e.result.probabilities.astype(np.float32) for e in evaluations], axis=0)
    return evaluate(run_id, {"probabilities": mean, mode: first.result.y_true, "coarse": _coarse_labels(first),
                             "label_mode": mode})


# -- calibration -------------------------------------------------------------------------------
def reliability(result: Result, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Per confidence bin (equal width over [0, 1]): images, mean confidence and accuracy.

    Confidence is the probability of the predicted class. Empty bins are left out.
    """
    confidence = result.probabilities.max(axis=1).astype(np.float64)
    correct = (result.y_pred == result.y_true).astype(np.float64)
    # Bin i holds (i/bins, (i+1)/bins]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    frame = pd.DataFrame({
        "bin_low": np.arange(bins) / bins, "bin_high": np.arange(1, bins + 1) / bins, "images": counts,
        "confidence": np.bincount(index, weights=confidence, minlength=bins) / np.maximum(counts, 1),
        "accuracy": np.bincount(index, weights=correct, minlength=bins) / np.maximum(counts, 1)})
    return frame[filled].reset_index(drop=True)


def expected_calibration_error(result: Result, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the image-weighted mean gap |accuracy - confidence| over the confidence bins (0 = calibrated)."""
    table = reliability(result, bins)
    weights = table["images"] / table["images"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())


def reliability_frame(named_results: dict[str, Result], bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """The reliability tables of several runs stacked, with `run` (its label) and `ece` columns, for one chart."""
    frames = [reliability(result, bins).assign(run=label, ece=expected_calibration_error(result, bins))
              for label, result in named_results.items()]
    columns = ["run", "bin_low", "bin_high", "images", "confidence", "accuracy", "ece"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
