"""Evaluation of text classifiers: quality, calibration, robustness, speed, cost and reports.

`evaluate_classifier` is the one evaluation of a classifier (any inference backend) on
labelled texts; `write_evaluation` writes its metrics.json, confusion.png and report.md.
"""

from __future__ import annotations

from modelyard.evaluation.calibration import expected_calibration_error
from modelyard.evaluation.classifier import Classifier
from modelyard.evaluation.evaluate import evaluate_classifier, write_evaluation
from modelyard.evaluation.metrics import classification_metrics
from modelyard.evaluation.report import metrics_markdown, plot_confusion
from modelyard.evaluation.robustness import NOISES, perturb, robustness_metrics
from modelyard.evaluation.speed import cost_per_million, measure_speed, peak_rss_mb

__all__ = [
    "NOISES",
    "Classifier",
    "classification_metrics",
    "cost_per_million",
    "evaluate_classifier",
    "expected_calibration_error",
    "measure_speed",
    "metrics_markdown",
    "peak_rss_mb",
    "perturb",
    "plot_confusion",
    "robustness_metrics",
    "write_evaluation",
]
