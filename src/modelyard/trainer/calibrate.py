"""Temperature scaling after training: one temperature fitted on dev, measured on held-out data.

A fine-tuned classifier is usually over-confident: its top probability is higher than how
often it is right. Dividing every logit by one temperature T > 1, fitted to minimise the dev
negative log-likelihood, fixes most of that without changing any prediction (Guo et al.,
"On Calibration of Modern Neural Networks", 2017).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelyard.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    scaled_probabilities,
    temperature_nll,
)
from modelyard.models.encoding import Encoded
from modelyard.models.predict import predict_logits
from modelyard.recipe import TrainConfig


def fit_calibration(
    model: torch.nn.Module,
    dev: Encoded,
    cfg: TrainConfig,
    device: torch.device,
    pad_id: int,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Return the calibration record of a trained classifier: `temperature` (1.0 when none
    was fitted), and with a fit, `fitted_on`, `dev_rows` and dev NLL and ECE before and after.

    No temperature is fitted when `cfg.calibrate` is false or dev holds fewer than
    `cfg.early_stopping.min_dev_rows` rows (a smaller split overfits T); `reason` says why.
    """
    if not cfg.calibrate:
        return {"method": "none", "temperature": 1.0, "reason": "train.calibrate is false"}
    minimum = cfg.early_stopping.min_dev_rows
    if len(dev) < minimum:
        return {
            "method": "none",
            "temperature": 1.0,
            "reason": f"{len(dev)} dev rows, fewer than early_stopping.min_dev_rows ({minimum})",
        }
    logits = _logits(model, dev, pad_id, device)
    y = np.asarray(dev.labels)
    t = round(fit_temperature(logits, y), 6)
    return {
        "method": "temperature",
        "temperature": round(t, 6),
        "fitted_on": "dev",
        "dev_rows": len(y),
        "dev_nll_before": temperature_nll(logits, y),
        "dev_nll_after": temperature_nll(logits, y, t),
        "dev_ece_before": expected_calibration_error(scaled_probabilities(logits), y, ece_bins),
        "dev_ece_after": expected_calibration_error(scaled_probabilities(logits, t), y, ece_bins),
    }


def uncalibrated_figures(
    model: torch.nn.Module,
    data: Encoded,
    device: torch.device,
    pad_id: int,
    ece_bins: int = 15,
) -> dict[str, float]:
    """Return `ece_before` and `accuracy_before`: the expected calibration error and accuracy
    of the model's plain softmax (T = 1) on `data`."""
    logits = _logits(model, data, pad_id, device)
    y = np.asarray(data.labels)
    return {
        "ece_before": expected_calibration_error(scaled_probabilities(logits), y, ece_bins),
        "accuracy_before": float((logits.argmax(axis=1) == y).mean()),
    }


def _logits(model: torch.nn.Module, data: Encoded, pad_id: int, device: torch.device) -> np.ndarray:
    # fp32, as every backend predicts, whatever precision training used
    return predict_logits(model, data, pad_id, device, None)
