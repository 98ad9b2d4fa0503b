"""Temperature scaling: the fit lowers NLL, keeps every prediction, and stays in its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation import expected_calibration_error
from modelyard.evaluation.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    calibration_note,
    check_temperature,
    fit_temperature,
    scaled_probabilities,
    temperature_nll,
)


def _overconfident(n: int = 2000, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose argmax is right 70% of the time but whose softmax says ~99%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, k, n)) % k)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), predicted] += 8.0
    return logits, y


def test_fit_lowers_nll_and_ece_of_overconfident_logits() -> None:
    logits, y = _overconfident()
    t = fit_temperature(logits, y)
    assert t > 2  # over-confident: the fit softens
    assert temperature_nll(logits, y, t) < 0.6 * temperature_nll(logits, y)
    before = expected_calibration_error(scaled_probabilities(logits), y)
    after = expected_calibration_error(scaled_probabilities(logits, t), y)
    assert before > 0.2 and after < 0.05


def test_fit_finds_the_minimum() -> None:
    logits, y = _overconfident(seed=1)
    t = fit_temperature(logits, y)
    for other in (t * 0.97, t * 1.03):
        assert temperature_nll(logits, y, t) <= temperature_nll(logits, y, other)


def test_scaling_never_changes_a_prediction() -> None:
    logits, y = _overconfident(seed=2)
    t = fit_temperature(logits, y)
    assert (scaled_probabilities(logits, t).argmax(1) == logits.argmax(1)).all()


def test_underconfident_logits_are_sharpened() -> None:
    y = np.arange(300) % 3
    logits = np.eye(3)[y] * 0.2  # always right, barely confident
    assert fit_temperature(logits, y) < 0.5


def test_fit_stays_in_bounds() -> None:
    y = np.arange(50) % 2
    assert fit_temperature(np.eye(2)[y] * 50.0, y) == pytest.approx(MIN_TEMPERATURE, rel=1e-3)
    wrong = np.eye(2)[1 - y] * 50.0  # always wrong: softer is always better
    assert fit_temperature(wrong, y) == pytest.approx(MAX_TEMPERATURE, rel=1e-3)


def test_temperature_one_is_the_plain_softmax() -> None:
    logits, _ = _overconfident(n=10)
    e = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(scaled_probabilities(logits), e / e.sum(1, keepdims=True))


@pytest.mark.parametrize(
    ("logits", "y"),
    [
        (np.zeros((0, 2)), np.zeros(0, dtype=int)),
        (np.zeros((3, 2)), np.array([0, 1])),
        (np.array([[0.0, np.nan]]), np.array([0])),
        (np.zeros((2, 2)), np.array([0, 2])),
    ],
)
def test_fit_refuses_bad_input(logits: np.ndarray, y: np.ndarray) -> None:
    with pytest.raises(ValueError):
        fit_temperature(logits, y)


@pytest.mark.parametrize("value", [0.0, -1.0, 1e9, float("nan"), float("inf"), "2", True, None])
def test_check_temperature_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        check_temperature(value)


def test_calibration_note() -> None:
    assert calibration_note(None) == ""
    off = calibration_note({"method": "none", "temperature": 1.0, "reason": "x"})
    assert "T = 1" in off and "x" in off
    on = calibration_note(
        {
            "method": "temperature",
            "temperature": 1.5,
            "dev_rows": 40,
            "ece_before": 0.2,
            "ece_after": 0.03,
            "evaluated_on": "test",
        }
    )
    assert "T = 1.5" in on and "0.200 before, 0.030 after" in on
