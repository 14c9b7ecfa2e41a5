"""Where a trained network errs: test-set predictions, confusion, per-class accuracy.

A run's test-set class probabilities are computed once, by `store_predictions` right
after training (the trainer's `after_training` hook) or on first request for older
runs (`ensure_predictions`), and kept in the store, so the Evaluate page only reads
2 MB and does array arithmetic. Everything else here is pure numpy on those arrays.

For a fine-label run the coarse result is derived by summing the fine probabilities
within each superclass (the official fine->coarse map), which is the probability the
model gives to that superclass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import augment
from .config import NUM_CLASSES
from .data import COARSE_LABELS, FINE_LABELS, FINE_TO_COARSE
from .store import MODEL_STATES, Store

PREDICT_BATCH = 500  # test images per forward pass: bounded memory, few Python round trips
BASELINE = {mode: 1.0 / n for mode, n in NUM_CLASSES.items()}  # random guessing: 0.05 coarse, 0.01 fine
NAMES = {"fine": FINE_LABELS, "coarse": COARSE_LABELS}


class EvaluationError(Exception):
    """One user-facing message: why a run cannot be evaluated."""


# -- computing and storing predictions ------------------------------------------------------
def predict_probabilities(model, images: np.ndarray, batch_size: int = PREDICT_BATCH,
                          tta: bool = False) -> np.ndarray:
    """Class probabilities (N, C) float32 for uint8 images (N, 32, 32, 3), in batches.

    Models take 0..255 float pixels and rescale themselves (lsc_core.model). With `tta`,
    each image's probabilities are averaged with its mirror image's (test-time augmentation).
    """
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch.astype(np.float32)))

    one = augment.flip_average if tta else (lambda run, batch: run(batch))
    parts = [one(predict, images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def tta_accuracy(model, data, label_mode: str) -> float:
    """Test accuracy of `model` in `label_mode` with flip averaging (test-time augmentation)."""
    probs = predict_probabilities(model, data.x_test, tta=True)
    return float(np.mean(probs.argmax(axis=1) == data.labels("test", label_mode)))


def store_predictions(store: Store, run_id: int, model, data, split=None) -> None:
    """The trainer's after_training hook: predict the full test set and store it; for a run
    whose config asks for test-time augmentation, also its flip-averaged accuracy."""
    run = store.get_run(run_id)
    probs = predict_probabilities(model, data.x_test)
    store.save_predictions(run_id, probs, data.y_test_fine, data.y_test_coarse, run.label_mode)
    if run.config is not None and run.config.tta:
        store.set_tta_accuracy(run_id, tta_accuracy(model, data, run.label_mode))


def ensure_tta_accuracy(store: Store, run_id: int, load_data=None) -> float:
    """A run's stored flip-averaged test accuracy; measured with its saved model first if missing.

    Raises EvaluationError when the run has no usable model.
    """
    run = store.get_run(run_id)
    if run is not None and run.tta_accuracy is not None:
        return run.tta_accuracy
    from .model import ModelUnavailable, load_run_model

    try:
        model = load_run_model(run, run_id)
    except ModelUnavailable as exc:
        raise EvaluationError(str(exc)) from None
    if load_data is None:
        from .data import load_cifar100 as load_data
    accuracy = tta_accuracy(model, load_data(), run.label_mode)
    store.set_tta_accuracy(run_id, accuracy)
    return accuracy


def evaluable_runs(store: Store) -> list[dict]:
    """Runs with a saved model (completed, stopped or interrupted: store.MODEL_STATES), newest first;
    also those whose stored model path was refused (`model_problem`), so pages can say why."""
    return [run for run in store.list_runs()
            if run.status in MODEL_STATES and (run.model_path or run.model_problem)]


def ensure_predictions(store: Store, run_id: int, load_data=None) -> dict:
    """A run's stored test predictions; computed from its saved model first if missing.

    `load_data()` returns the Cifar100 to predict (only called when computing).
    Raises EvaluationError when the run has no usable model.
    """
    stored = store.load_predictions(run_id)
    if stored is not None:
        return stored
    from .model import ModelUnavailable, load_run_model

    try:
        model = load_run_model(store.get_run(run_id), run_id)
    except ModelUnavailable as exc:
        raise EvaluationError(str(exc)) from None
    if load_data is None:
        from .data import load_cifar100 as load_data
    store_predictions(store, run_id, model, load_data())
    return store.load_predictions(run_id)


# -- the arithmetic (pure) -----------------------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n) int64 counts; row = true class, column = predicted class."""
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_normalise(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the share of a true class predicted as each class); empty rows stay 0."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


def top_k_accuracy(probabilities: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k most probable."""
    k = min(k, probabilities.shape[1])
    top = np.argpartition(-probabilities.astype(np.float32), k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def coarse_from_fine(probabilities: np.ndarray, fine_to_coarse=FINE_TO_COARSE) -> np.ndarray:
    """(N, 20) superclass probabilities: the fine probabilities summed within each superclass."""
    mapping = np.asarray(fine_to_coarse)
    one_hot = np.zeros((len(mapping), mapping.max() + 1), dtype=np.float32)
    one_hot[np.arange(len(mapping)), mapping] = 1.0
    return probabilities.astype(np.float32) @ one_hot


def within_superclass_error_share(y_true: np.ndarray, y_pred: np.ndarray, fine_to_coarse=FINE_TO_COARSE) -> float:
    """Of the fine errors, the share whose wrong class lies in the true class's superclass (nan if none)."""
    mapping = np.asarray(fine_to_coarse)
    wrong = np.asarray(y_true) != np.asarray(y_pred)
    if not wrong.any():
        return float("nan")
    return float(np.mean(mapping[np.asarray(y_true)[wrong]] == mapping[np.asarray(y_pred)[wrong]]))


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class (nan for a class absent from the test set)."""
    totals = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), totals, out=np.full(len(totals), np.nan), where=totals > 0)


def display_order(label_mode: str, fine_to_coarse=FINE_TO_COARSE) -> list[int]:
    """Class indices in display order: fine classes grouped by superclass (5x5 blocks show)."""
    if label_mode == "coarse":
        return list(range(NUM_CLASSES["coarse"]))
    return sorted(range(NUM_CLASSES["fine"]), key=lambda c: (fine_to_coarse[c], FINE_LABELS[c]))


def most_confused_pairs(confusion: np.ndarray, n: int = 10) -> list[tuple[int, int, int]]:
    """The n largest off-diagonal cells as (true, predicted, count), largest first, zeros left out."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    pairs = [(int(i // off.shape[1]), int(i % off.shape[1])) for i in flat]
    return [(t, p, int(off[t, p])) for t, p in pairs if off[t, p] > 0]


# -- one run's evaluation --------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Result:
    """Predictions of one label level (the run's own, or coarse derived from fine)."""

    label_mode: str
    probabilities: np.ndarray  # (N, C)
    y_true: np.ndarray  # (N,)
    y_pred: np.ndarray  # (N,)
    confusion: np.ndarray  # (C, C)

    @property
    def names(self) -> tuple[str, ...]:
        return NAMES[self.label_mode]

    @property
    def top1(self) -> float:
        return float(np.mean(self.y_true == self.y_pred))

    @property
    def top5(self) -> float:
        return top_k_accuracy(self.probabilities, self.y_true, 5)

    @property
    def baseline(self) -> float:
        return BASELINE[self.label_mode]


def make_result(label_mode: str, probabilities: np.ndarray, y_true: np.ndarray) -> Result:
    y_true = np.asarray(y_true).astype(np.int64)
    y_pred = np.argmax(probabilities, axis=1)
    return Result(label_mode, probabilities, y_true, y_pred,
                  confusion_matrix(y_true, y_pred, probabilities.shape[1]))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A run's test-set result, and for a fine run the coarse result derived from it."""

    run_id: int
    result: Result
    derived_coarse: Result | None  # fine runs only
    within_superclass: float | None  # fine runs only: share of fine errors inside the true superclass

    @property
    def n_images(self) -> int:
        return len(self.result.y_true)


def evaluate(run_id: int, predictions: dict) -> Evaluation:
    """An Evaluation from stored predictions (as `Store.load_predictions` returns them)."""
    mode = predictions["label_mode"]
    result = make_result(mode, predictions["probabilities"], predictions[mode])
    if mode == "coarse":
        return Evaluation(run_id, result, None, None)
    derived = make_result("coarse", coarse_from_fine(predictions["probabilities"]), predictions["coarse"])
    return Evaluation(run_id, result, derived, within_superclass_error_share(result.y_true, result.y_pred))


def evaluate_run(store: Store, run_id: int, load_data=None) -> Evaluation:
    """Evaluate a completed run from its stored (or freshly computed) test predictions."""
    return evaluate(run_id, ensure_predictions(store, run_id, load_data))


# -- frames for charts and tables ------------------------------------------------------------
def confusion_frame(result: Result) -> pd.DataFrame:
    """One row per (true, predicted) cell: names, count, share of the true class, display ranks."""
    n = len(result.names)
    order = display_order(result.label_mode)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    true_idx, pred_idx = np.divmod(np.arange(n * n), n)
    names = np.asarray(result.names)
    return pd.DataFrame({
        "true": names[true_idx], "predicted": names[pred_idx],
        "count": result.confusion.ravel(), "share": row_normalise(result.confusion).ravel(),
        "true_rank": rank[true_idx], "predicted_rank": rank[pred_idx],
    })


def class_names_in_order(label_mode: str) -> list[str]:
    return [NAMES[label_mode][c] for c in display_order(label_mode)]


# -- one superclass of a fine run --------------------------------------------------------------
def superclass_members(coarse_class: int, fine_to_coarse=FINE_TO_COARSE) -> list[int]:
    """The fine classes of one superclass (5 in CIFAR-100), by name."""
    members = [c for c, coarse in enumerate(fine_to_coarse) if coarse == coarse_class]
    return sorted(members, key=lambda c: FINE_LABELS[c])


def superclass_names(coarse_class: int) -> list[str]:
    """The names of a superclass's fine classes, in `superclass_members` order (a heatmap's axis order)."""
    return [FINE_LABELS[c] for c in superclass_members(coarse_class)]


def superclass_confusion_frame(result: Result, coarse_class: int) -> pd.DataFrame:
    """The 5x5 block of a fine run's confusion for one superclass, as `confusion_frame` rows.

    `share` is of all the true class's test images, so a row sums to the share that stayed
    inside the superclass; the rest went to other superclasses (`outside`, per true class).
    """
    members = superclass_members(coarse_class)
    totals = result.confusion.sum(axis=1)
    rows = []
    for true in members:
        for predicted in members:
            count = int(result.confusion[true, predicted])
            rows.append({"true": result.names[true], "predicted": result.names[predicted], "count": count,
                         "share": count / totals[true] if totals[true] else 0.0,
                         "outside": 1.0 - result.confusion[true, members].sum() / totals[true]
                         if totals[true] else 0.0})
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share", "outside"])


def superclass_mistakes(result: Result, coarse_class: int, limit: int = 24) -> np.ndarray:
    """Test indices of wrong predictions of a superclass's images that stay inside it, most confident first."""
    members = np.asarray(superclass_members(coarse_class))
    mask = np.isin(result.y_true, members) & np.isin(result.y_pred, members) & (result.y_true != result.y_pred)
    indices = np.flatnonzero(mask)
    confidence = result.probabilities[indices, result.y_pred[indices]].astype(np.float32)
    return indices[np.argsort(-confidence, kind="stable")][:limit]


def per_class_frame(result: Result) -> pd.DataFrame:
    """Class, superclass (fine only), test images and accuracy, best first (ties by name)."""
    frame = pd.DataFrame({"class": result.names, "images": result.confusion.sum(axis=1),
                          "accuracy": per_class_accuracy(result.confusion)})
    if result.label_mode == "fine":
        frame.insert(1, "superclass", [COARSE_LABELS[c] for c in FINE_TO_COARSE])
    frame = frame[frame["images"] > 0]
    return frame.sort_values(["accuracy", "class"], ascending=[False, True], kind="stable").reset_index(drop=True)


def confused_pairs_frame(result: Result, n: int = 10) -> pd.DataFrame:
    """The most-confused (true, predicted) pairs with their counts and share of the true class."""
    shares = row_normalise(result.confusion)
    rows = [{"true": result.names[t], "predicted": result.names[p], "count": c, "share": shares[t, p],
             "true_index": t, "predicted_index": p} for t, p, c in most_confused_pairs(result.confusion, n)]
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share", "true_index", "predicted_index"])


def misclassified(result: Result, *, true_class: int | None = None, predicted_class: int | None = None,
                  limit: int = 24) -> np.ndarray:
    """Test indices of wrong predictions, optionally of one true and/or predicted class, most confident first."""
    mask = result.y_true != result.y_pred
    if true_class is not None:
        mask &= result.y_true == true_class
    if predicted_class is not None:
        mask &= result.y_pred == predicted_class
    indices = np.flatnonzero(mask)
    confidence = result.probabilities[indices, result.y_pred[indices]].astype(np.float32)
    return indices[np.argsort(-confidence, kind="stable")][:limit]


def gallery(result: Result, images: np.ndarray, indices: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """Test images at `indices` with captions 'true -> predicted (p)'.

    `images` are the data set's test images; they must be the ones predicted.
    """
    if len(images) != len(result.y_true):
        raise EvaluationError(f"the loaded test set has {len(images)} images but this run was evaluated on "
                              f"{len(result.y_true)}: is LSC_DATA the data set it was trained on?")
    captions = [f"{result.names[result.y_true[i]]} → {result.names[result.y_pred[i]]} "
                f"({float(result.probabilities[i, result.y_pred[i]]):.0%})" for i in indices]
    return [images[i] for i in indices], captions


def _named(frame: pd.DataFrame) -> list[tuple[str, float]]:
    return [(str(name), float(acc)) for name, acc in zip(frame["class"], frame["accuracy"])]


def summary(evaluation: Evaluation) -> dict:
    """The headline numbers and the best and worst classes, for metrics and text."""
    result = evaluation.result
    classes = per_class_frame(result)
    out = {"top1": result.top1, "top5": result.top5, "baseline": result.baseline, "images": evaluation.n_images,
           "best": _named(classes.head(3)), "worst": _named(classes.tail(3).iloc[::-1])}
    if evaluation.derived_coarse is not None:
        out.update(coarse_top1=evaluation.derived_coarse.top1, coarse_top5=evaluation.derived_coarse.top5,
                   within_superclass=evaluation.within_superclass)
    return out


def confused_pair_galleries(result: Result, images: np.ndarray, n_pairs: int = 6, per_pair: int = 4) -> list[dict]:
    """The most-confused pairs, each {'title', 'images', 'captions', 'indices'} with a few of its test
    images (`indices`: their places in the test set)."""
    galleries = []
    for row in confused_pairs_frame(result, n_pairs).itertuples(index=False):
        indices = misclassified(result, true_class=row.true_index, predicted_class=row.predicted_index,
                                limit=per_pair)
        pictures, captions = gallery(result, images, indices)
        galleries.append({"title": f"{row.true} taken for {row.predicted}: {row.count} images "
                                   f"({row.share:.0%} of {row.true})", "images": pictures, "captions": captions,
                          "indices": indices})
    return galleries
