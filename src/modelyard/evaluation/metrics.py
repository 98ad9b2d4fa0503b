"""Classification metrics of a probabilistic classifier, as one JSON-ready dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from modelyard.evaluation.calibration import (
    check_probs,
    expected_calibration_error,
    reliability_bins,
)


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, labels: list[str], ece_bins: int = 15
) -> dict[str, Any]:
    """Score predicted probabilities against true class indices.

    The prediction is ``argmax(probs)``; column ``i`` of ``probs`` and class index ``i``
    both mean ``labels[i]``. Classes absent from the data still appear, with zero scores.
    Returns a JSON-serialisable dict with keys ``n``, ``accuracy``, ``macro_precision``,
    ``macro_recall``, ``macro_f1``, ``weighted_precision``, ``weighted_recall``,
    ``weighted_f1``, ``ece``, ``reliability`` (the non-empty calibration bins), ``log_loss``, ``per_class`` (label -> precision, recall, f1,
    support), ``confusion_matrix`` (rows true, columns predicted, in ``labels`` order),
    ``labels`` and ``warnings`` (plain sentences, e.g. when every prediction is one class).
    Raises ValueError on empty input, mismatched shapes, fewer than two or duplicate
    labels, or probabilities that are not a valid distribution per row.
    """
    p, y = check_probs(probs, y_true)
    _check_labels(labels, p.shape[1])
    ids = list(range(len(labels)))
    y_pred = p.argmax(axis=1)
    result: dict[str, Any] = {
        "n": len(y),
        "accuracy": float(accuracy_score(y, y_pred)),
    }
    result.update(_averaged_scores(y, y_pred, ids))
    result["ece"] = expected_calibration_error(p, y, n_bins=ece_bins)
    result["reliability"] = reliability_bins(p, y, n_bins=ece_bins)
    result["log_loss"] = float(log_loss(y, p, labels=ids))
    result["per_class"] = _per_class_scores(y, y_pred, labels)
    result["confusion_matrix"] = confusion_matrix(y, y_pred, labels=ids).tolist()
    result["labels"] = list(labels)
    result["warnings"] = prediction_warnings(y, y_pred, labels)
    return result


def prediction_warnings(y: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> list[str]:
    """Return warnings about degenerate predictions: one predicted class for data of several."""
    predicted, present = np.unique(y_pred), np.unique(y)
    if len(predicted) == 1 and len(present) > 1:
        return [
            f"the model predicts '{labels[int(predicted[0])]}' for all {len(y)} rows: it has not "
            "learned to separate the classes (too few steps, a learning rate that is off, or, "
            "for a private run, noise that drowns the signal)"
        ]
    return []


def _check_labels(labels: list[str], n_classes: int) -> None:
    if len(labels) != n_classes:
        raise ValueError(
            f"labels must name every column of probs; got {len(labels)} labels for "
            f"{n_classes} columns"
        )
    if n_classes < 2:
        raise ValueError(f"classification needs at least 2 labels; got {list(labels)}")
    repeated = sorted({str(label) for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"labels must be unique; repeated: {', '.join(repeated)}")


def _averaged_scores(y: np.ndarray, y_pred: np.ndarray, ids: list[int]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, y_pred, labels=ids, average=average, zero_division=0
        )
        scores[f"{average}_precision"] = float(precision)
        scores[f"{average}_recall"] = float(recall)
        scores[f"{average}_f1"] = float(f1)
    return scores


def _per_class_scores(
    y: np.ndarray, y_pred: np.ndarray, labels: list[str]
) -> dict[str, dict[str, float | int]]:
    precision, recall, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=list(range(len(labels))), average=None, zero_division=0
    )
    return {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
