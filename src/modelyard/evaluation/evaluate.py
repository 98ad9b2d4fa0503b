"""Evaluate any classifier on labelled texts: the one evaluation path of modelyard.

`modelyard evaluate` (every artifact kind), the test-set evaluation at the end of training,
compression's measurements of each variant and the robustness sweep all call
`evaluate_classifier` on a `Classifier` (an inference `modelyard.backends.Backend` is one);
`write_evaluation` writes what `modelyard evaluate` leaves on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.evaluation.classifier import Classifier, predict_labelled
from modelyard.evaluation.metrics import classification_metrics
from modelyard.evaluation.report import metrics_markdown, plot_confusion
from modelyard.evaluation.robustness import robustness_markdown, robustness_metrics
from modelyard.evaluation.speed import measure_speed
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.models.encoding import LabelledTexts
from modelyard.recipe import EvaluateConfig


def evaluate_classifier(
    classifier: Classifier,
    data: LabelledTexts,
    cfg: EvaluateConfig | None = None,
    robustness: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Return the metrics of `classifier` on `data` (label ids follow `classifier.labels`).

    The metrics of `classification_metrics` plus `truncated` (texts cut at max_length); with
    `cfg.speed`, latency at batch 1 and throughput at batch 32 on the first
    `cfg.speed_samples` texts; with `robustness`, `robustness` (accuracy under seeded noise,
    see `robustness_metrics`). `cfg` defaults to the recipe's `evaluate` defaults.
    Raises DataError when the data has text pairs the classifier cannot read.
    """
    cfg = cfg or EvaluateConfig()
    texts, pairs = list(data.texts), data.pairs
    probs, cut = predict_labelled(classifier, texts, pairs)
    metrics = classification_metrics(
        list(data.labels), probs, list(classifier.labels), ece_bins=cfg.ece_bins
    )
    metrics["truncated"] = int(sum(cut))
    if cfg.speed and texts:
        sample = texts[: cfg.speed_samples]
        metrics.update(measure_speed(classifier.predict_proba, sample, batch_size=32))
    if robustness:
        metrics["robustness"] = robustness_metrics(classifier, data, seed, clean=probs)
    return metrics


def write_evaluation(metrics: dict[str, Any], labels: list[str], out: Path, title: str) -> Path:
    """Write metrics.json, confusion.png and report.md (and robustness.md when the metrics hold
    robustness figures) into `out`; return `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    plot_confusion(metrics["confusion_matrix"], labels, out / "confusion.png")
    atomic_write_text(out / "report.md", metrics_markdown(metrics, title))
    if "robustness" in metrics:
        atomic_write_text(out / "robustness.md", robustness_markdown(metrics["robustness"], title))
    return out
