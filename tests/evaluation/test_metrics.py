"""classification_metrics against confusion matrices worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modelyard.evaluation import classification_metrics

EXPECTED_KEYS = {
    "n",
    "accuracy",
    "reliability",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "ece",
    "log_loss",
    "per_class",
    "confusion_matrix",
    "labels",
    "warnings",
}

# y_true = [neg, neg, neg, pos, pos]; predictions [neg, neg, pos, pos, neg].
KNOWN_Y = [0, 0, 0, 1, 1]
KNOWN_PROBS = np.array([[0.85, 0.15], [0.75, 0.25], [0.35, 0.65], [0.05, 0.95], [0.55, 0.45]])


def test_perfect_predictions() -> None:
    y = [0, 1, 2, 1]
    result = classification_metrics(y, np.eye(3)[y], ["a", "b", "c"])
    assert set(result) == EXPECTED_KEYS
    assert result["n"] == 4
    for key in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "weighted_recall"):
        assert result[key] == pytest.approx(1.0)
    assert result["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
    assert result["ece"] == pytest.approx(0.0)
    assert result["log_loss"] == pytest.approx(0.0, abs=1e-9)
    assert result["per_class"]["b"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}


def test_single_class_predictions_are_warned_about() -> None:
    probs = np.tile([0.3, 0.7], (4, 1))
    result = classification_metrics([0, 1, 0, 1], probs, ["neg", "pos"])
    assert len(result["warnings"]) == 1
    assert "predicts 'pos' for all 4 rows" in result["warnings"][0]
    # one class in the data too: nothing to warn about; a healthy model neither
    assert classification_metrics([1, 1], probs[:2], ["neg", "pos"])["warnings"] == []
    assert classification_metrics(KNOWN_Y, KNOWN_PROBS, ["neg", "pos"])["warnings"] == []


def test_known_confusion() -> None:
    result = classification_metrics(KNOWN_Y, KNOWN_PROBS, ["neg", "pos"])
    assert result["confusion_matrix"] == [[2, 1], [1, 1]]
    assert result["accuracy"] == pytest.approx(3 / 5)
    # neg: P = R = F1 = 2/3 (support 3); pos: P = R = F1 = 1/2 (support 2).
    assert result["per_class"]["neg"]["precision"] == pytest.approx(2 / 3)
    assert result["per_class"]["pos"]["recall"] == pytest.approx(1 / 2)
    assert result["per_class"]["neg"]["support"] == 3
    assert result["macro_precision"] == pytest.approx(7 / 12)
    assert result["macro_f1"] == pytest.approx(7 / 12)
    assert result["weighted_recall"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2) / 5)
    assert result["weighted_f1"] == pytest.approx(0.6)


def test_known_confusion_probabilistic_scores() -> None:
    result = classification_metrics(KNOWN_Y, KNOWN_PROBS, ["neg", "pos"])
    p_true = [0.85, 0.75, 0.35, 0.95, 0.45]
    assert result["log_loss"] == pytest.approx(-sum(math.log(p) for p in p_true) / 5)
    # Each confidence sits alone in one of 15 bins: gaps 0.15, 0.25, 0.65, 0.05, 0.55.
    assert result["ece"] == pytest.approx((0.15 + 0.25 + 0.65 + 0.05 + 0.55) / 5)


def test_absent_class_still_appears() -> None:
    # y_true = [a, a, b, b], predicted [a, b, b, b]; class c never occurs nor is predicted.
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    result = classification_metrics([0, 0, 1, 1], probs, ["a", "b", "c"])
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # a: P 1, R 1/2; b: P 2/3, R 1; c counts as 0 in the macro average.
    assert result["macro_precision"] == pytest.approx((1 + 2 / 3) / 3)
    assert result["macro_recall"] == pytest.approx(0.5)
    assert result["weighted_precision"] == pytest.approx((1 + 2 / 3) / 2)


def test_result_is_json_serialisable() -> None:
    result = classification_metrics(tuple(KNOWN_Y), KNOWN_PROBS, ["neg", "pos"])
    assert json.loads(json.dumps(result)) == result
    assert result["labels"] == ["neg", "pos"]


@pytest.mark.parametrize(
    ("y", "probs", "labels", "message"),
    [
        ([], np.empty((0, 2)), ["a", "b"], "empty"),
        ([0, 1], np.array([[0.5, 0.5]]), ["a", "b"], "one label per row"),
        ([0], np.array([[0.5, 0.5]]), ["a", "b", "c"], "3 labels for 2 columns"),
        ([0], np.array([[1.0]]), ["a"], "at least 2 labels"),
        ([0], np.array([[0.5, 0.5]]), ["a", "a"], "unique"),
        ([0], np.array([[3.0, 1.0]]), ["a", "b"], r"\[0, 1\]"),
    ],
)
def test_invalid_input_raises(
    y: list[int], probs: np.ndarray, labels: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, probs, labels)
