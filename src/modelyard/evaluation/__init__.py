"""Evaluation of text classifiers: quality, calibration, speed, cost and reports."""

from __future__ import annotations

from modelyard.evaluation.calibration import expected_calibration_error
from modelyard.evaluation.metrics import classification_metrics
from modelyard.evaluation.report import metrics_markdown, plot_confusion
from modelyard.evaluation.speed import cost_per_million, measure_speed, peak_rss_mb

__all__ = [
    "classification_metrics",
    "cost_per_million",
    "expected_calibration_error",
    "measure_speed",
    "metrics_markdown",
    "peak_rss_mb",
    "plot_confusion",
]
