"""Calibration of predicted probabilities: expected calibration error (ECE) and temperature
scaling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Softmax in float32 leaves row sums a few ulps away from 1; anything further off is a bug.
_ROW_SUM_TOLERANCE = 1e-3


def check_probs(
    probs: np.ndarray, y_true: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a probability matrix against its true labels.

    Returns ``(probs, y_true)`` as float64 and int64 arrays, with each row of ``probs``
    renormalised to sum exactly to 1.
    Raises ValueError if either input is empty, ``probs`` is not 2-D, the lengths differ,
    a probability lies outside [0, 1], a row does not sum to 1, or a label is not a
    column index of ``probs``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true)
    if p.ndim != 2:
        raise ValueError(f"probs must be a 2-D (n_samples, n_classes) array; got shape {p.shape}")
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(
            f"y_true must be 1-D with one label per row of probs; got y_true shape {y.shape} "
            f"and probs shape {p.shape}"
        )
    if len(p) == 0 or p.shape[1] == 0:
        raise ValueError(f"cannot evaluate empty input; probs has shape {p.shape}")
    return _check_values(p), _check_labels(y, p.shape[1])


def _check_values(p: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probs must hold finite probabilities in [0, 1]; pass softmax outputs")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"each row of probs must sum to 1; row {bad[0]} sums to {sums[bad[0]]:.6g} "
            f"({bad.size} rows off); pass softmax outputs, not logits"
        )
    return p / sums[:, None]


def _check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class indices; got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"y_true must hold class indices in [0, {n_classes - 1}] to match the "
            f"{n_classes} columns of probs; got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int64)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Compute the expected calibration error of top-1 predictions.

    Confidence is each row's maximum probability; samples fall into ``n_bins`` equal-width
    bins over [0, 1], each bin holding confidences in ``(lo, hi]``.
    Returns the sample-weighted mean over bins of ``|accuracy - mean confidence|``, a
    float in [0, 1].
    Raises ValueError if ``n_bins < 1`` or the inputs fail :func:`check_probs`.
    """
    counts, conf_sum, correct_sum = _bin_sums(probs, y_true, n_bins)
    # Per bin, count * |acc - conf| equals |correct_sum - conf_sum|, so empty bins add 0.
    return float(np.abs(correct_sum - conf_sum).sum() / counts.sum())


def reliability_bins(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15
) -> list[dict[str, float]]:
    """Return the reliability diagram of top-1 predictions: one entry per non-empty bin.

    Bins are the ``n_bins`` equal-width ``(lo, hi]`` bins of :func:`expected_calibration_error`;
    each entry holds ``lo``, ``hi``, ``count``, ``confidence`` (mean top-1 probability) and
    ``accuracy`` (share of correct predictions), so ECE is the count-weighted mean of
    ``|accuracy - confidence|``. Raises ValueError as :func:`expected_calibration_error` does.
    """
    counts, conf_sum, correct_sum = _bin_sums(probs, y_true, n_bins)
    return [
        {
            "lo": round(i / n_bins, 6),
            "hi": round((i + 1) / n_bins, 6),
            "count": int(counts[i]),
            "confidence": float(conf_sum[i] / counts[i]),
            "accuracy": float(correct_sum[i] / counts[i]),
        }
        for i in np.flatnonzero(counts)
    ]


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a confidence equal to an edge into the bin below it: bins are (lo, hi].
    index = np.searchsorted(edges, confidence, side="left") - 1
    return np.clip(index, 0, n_bins - 1)


def _bin_sums(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-bin counts, sums of top-1 confidence and sums of correct top-1 predictions."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins}")
    p, y = check_probs(probs, y_true)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_index(confidence, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return counts, conf_sum, correct_sum


# Temperature scaling (Guo et al., 2017): probabilities softmax(z / T) with one T fitted on
# held-out data. T outside this range is no calibration but a broken model or a corrupt file.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
# golden-section steps over log T: the bracket shrinks by 0.618 a step, to ~1e-14 of its width
_SEARCH_STEPS = 70


def scaled_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Return softmax(logits / temperature) row by row, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def temperature_nll(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    """Return the mean negative log-likelihood of `y_true` under softmax(logits / temperature)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    y = np.asarray(y_true, dtype=np.int64)
    return float(np.mean(log_norm - z[np.arange(len(z)), y]))


def fit_temperature(logits: np.ndarray, y_true: Sequence[int] | np.ndarray) -> float:
    """Return the temperature in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the NLL of
    `y_true` under softmax(logits / T).

    The NLL is convex in 1/T, so it has one minimum over log T; a golden-section search over
    log T finds it (or the bound it lies beyond) deterministically. Dividing by T > 0 never
    changes a row's argmax. Raises ValueError for empty, non-finite or mismatched inputs.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0 or z.shape[1] == 0 or not np.all(np.isfinite(z)):
        raise ValueError(f"logits must be a non-empty, finite 2-D array; got shape {z.shape}")
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) != len(z):
        raise ValueError(f"one label per row of logits: labels of shape {y.shape}, {len(z)} rows")
    y = _check_labels(y, z.shape[1])
    ratio = (np.sqrt(5.0) - 1) / 2
    lo, hi = np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = temperature_nll(z, y, np.exp(a)), temperature_nll(z, y, np.exp(b))
    for _ in range(_SEARCH_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = temperature_nll(z, y, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = temperature_nll(z, y, np.exp(b))
    return float(np.clip(np.exp((lo + hi) / 2), MIN_TEMPERATURE, MAX_TEMPERATURE))


def check_temperature(value: object) -> float:
    """Return `value` as a temperature; raise ValueError unless it is a finite number in
    [MIN_TEMPERATURE, MAX_TEMPERATURE]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a temperature is a number; got {value!r}")
    t = float(value)
    if not (np.isfinite(t) and MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
        raise ValueError(
            f"a temperature lies in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]; got {value!r}"
        )
    return t


def calibration_note(calibration: dict[str, Any] | None) -> str:
    """Return one sentence on a run's temperature scaling (`training["calibration"]`), or ""
    for a run that recorded none."""
    if not calibration:
        return ""
    if calibration.get("method") != "temperature":
        reason = calibration.get("reason", "not fitted")
        return f"no temperature fitted ({reason}): probabilities are the plain softmax (T = 1)"
    text = (
        f"temperature T = {calibration['temperature']:.3g} fitted on "
        f"{calibration.get('dev_rows')} dev rows; probabilities are softmax(logits / T), "
        "predicted labels unchanged"
    )
    if "ece_before" in calibration and "ece_after" in calibration:
        text += (
            f"; ECE on the {calibration.get('evaluated_on', 'test')} split "
            f"{calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after"
        )
    return text
