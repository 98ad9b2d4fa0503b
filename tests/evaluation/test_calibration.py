"""Expected calibration error: hand-computed golden values, bin convention and bounds."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation import expected_calibration_error


def _binary(confidences: list[float], correct: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Rows predicting class 0 with the given confidence; y is 0 when correct, else 1."""
    conf = np.asarray(confidences)
    probs = np.stack([conf, 1.0 - conf], axis=1)
    y = np.where(correct, 0, 1)
    return probs, y


def test_perfectly_calibrated_is_zero() -> None:
    # 0.75 confidence with 3 of 4 right, 0.6 confidence with 3 of 5 right.
    probs, y = _binary([0.75] * 4 + [0.6] * 5, [True, True, True, False] + [True] * 3 + [False] * 2)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_one_hot_correct_predictions_are_zero() -> None:
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 1])) == pytest.approx(0.0)


def test_overconfident_golden_value() -> None:
    # Bin of 0.65: acc 1, gap 0.35, 3 samples; bin of 0.95: acc 0, gap 0.95, 1 sample.
    # ECE = (3 * 0.35 + 1 * 0.95) / 4 = 0.5
    probs, y = _binary([0.65, 0.65, 0.65, 0.95], [True, True, True, False])
    assert expected_calibration_error(probs, y) == pytest.approx(0.5)


def test_single_bin_pools_all_samples() -> None:
    # One bin: acc 0.75, mean confidence (3 * 0.65 + 0.95) / 4 = 0.725 -> 0.025
    probs, y = _binary([0.65, 0.65, 0.65, 0.95], [True, True, True, False])
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(0.025)


def test_confidence_on_an_edge_goes_to_the_lower_bin() -> None:
    # Bins are (lo, hi]: 0.5 lands in (0, 0.5] apart from 1.0, giving (0.5 + 1.0) / 2.
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert expected_calibration_error(probs, np.array([0, 1]), n_bins=2) == pytest.approx(0.75)


def test_confidently_wrong_is_one() -> None:
    probs = np.eye(3)[[0, 1, 2]]
    assert expected_calibration_error(probs, np.array([1, 2, 0])) == pytest.approx(1.0)


@pytest.mark.parametrize("n_bins", [1, 5, 15, 100])
def test_bounds_on_random_probabilities(n_bins: int) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, size=200)
    ece = expected_calibration_error(probs, y, n_bins=n_bins)
    assert isinstance(ece, float)
    assert 0.0 <= ece <= 1.0


def test_float32_softmax_is_accepted() -> None:
    logits = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ece = expected_calibration_error(probs, np.zeros(50, dtype=int))
    assert 0.0 <= ece <= 1.0


@pytest.mark.parametrize(
    ("probs", "y", "message"),
    [
        (np.empty((0, 2)), np.array([], dtype=int), "empty"),
        (np.array([0.7, 0.3]), np.array([0]), "2-D"),
        (np.array([[0.7, 0.3]]), np.array([0, 1]), "one label per row"),
        (np.array([[2.0, -1.0]]), np.array([0]), r"\[0, 1\]"),
        (np.array([[0.5, 0.2]]), np.array([0]), "sum to 1"),
        (np.array([[0.7, 0.3]]), np.array([2]), "class indices"),
        (np.array([[0.7, 0.3]]), np.array([0.0]), "integer"),
    ],
)
def test_invalid_input_raises(probs: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(probs, y)


def test_nonpositive_bins_raise() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(np.array([[0.7, 0.3]]), np.array([0]), n_bins=0)


def test_reliability_bins_reproduce_ece() -> None:
    from modelyard.evaluation.calibration import reliability_bins

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, size=200)
    bins = reliability_bins(probs, y, n_bins=10)
    assert sum(b["count"] for b in bins) == 200
    assert all(b["lo"] < b["confidence"] <= b["hi"] for b in bins)
    weighted = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / 200
    assert weighted == pytest.approx(expected_calibration_error(probs, y, n_bins=10))


def test_reliability_bins_hand_computed() -> None:
    from modelyard.evaluation.calibration import reliability_bins

    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]])
    bins = reliability_bins(probs, np.array([0, 1, 1]), n_bins=2)
    assert bins == [
        {
            "lo": 0.5,
            "hi": 1.0,
            "count": 3,
            "confidence": pytest.approx(0.7667, abs=1e-4),
            "accuracy": pytest.approx(2 / 3),
        },
    ]
