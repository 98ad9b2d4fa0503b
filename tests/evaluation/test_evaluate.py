"""The one evaluation of a classifier: metrics, speed, robustness, text pairs and the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.data import Split
from modelyard.errors import DataError
from modelyard.evaluation import evaluate_classifier, write_evaluation
from modelyard.recipe import EvaluateConfig

LABELS = ["billing", "shipping"]
SPLIT = Split(
    texts=["refund my card", "where is my parcel", "charged twice", "late delivery again"],
    labels=[0, 1, 0, 1],
)


class Keyword:
    """A backend-like classifier: shipping when a text names a parcel or a delivery."""

    name = "keyword"
    labels = LABELS

    def __init__(self) -> None:
        self.calls = 0

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        self.calls += 1
        ship = np.array([("parcel" in t or "delivery" in t) for t in texts], dtype=float)
        probs = np.stack([1 - ship, ship], axis=1) * 0.8 + 0.1
        return probs, [len(t) > 15 for t in texts]


class PairReader(Keyword):
    """Reads the label from the second text only."""

    def predict_proba(  # type: ignore[override]
        self, texts: list[str], pairs: list[str] | None = None
    ) -> tuple[np.ndarray, list[bool]]:
        return super().predict_proba(pairs if pairs is not None else texts)


def test_metrics_and_truncation() -> None:
    metrics = evaluate_classifier(Keyword(), SPLIT, EvaluateConfig(speed=False))
    assert metrics["accuracy"] == 1.0 and metrics["n"] == 4
    assert metrics["truncated"] == 2
    assert metrics["confusion_matrix"] == [[2, 0], [0, 2]]
    assert "latency_p50_ms" not in metrics and "robustness" not in metrics


def test_speed_is_measured_when_asked() -> None:
    classifier = Keyword()
    metrics = evaluate_classifier(classifier, SPLIT, EvaluateConfig(speed=True, speed_samples=8))
    assert metrics["latency_p50_ms"] > 0 and metrics["throughput_b32_per_s"] > 0
    assert classifier.calls > 10


def test_robustness_reuses_the_clean_pass() -> None:
    metrics = evaluate_classifier(Keyword(), SPLIT, EvaluateConfig(speed=False), robustness=True)
    report = metrics["robustness"]
    assert report["clean_accuracy"] == pytest.approx(metrics["accuracy"])
    assert set(report["noise"]) >= {"typos", "case", "word_swap"}


def test_text_pairs_reach_a_classifier_that_reads_them() -> None:
    split = Split(texts=["a", "b"], labels=[1, 0], pairs=["my parcel", "my card"])
    metrics = evaluate_classifier(PairReader(), split, EvaluateConfig(speed=False))
    assert metrics["accuracy"] == 1.0
    with pytest.raises(DataError, match="reads single texts"):
        evaluate_classifier(Keyword(), split, EvaluateConfig(speed=False))


def test_write_evaluation(tmp_path: Path) -> None:
    metrics = evaluate_classifier(Keyword(), SPLIT, EvaluateConfig(speed=False), robustness=True)
    out = write_evaluation(metrics, LABELS, tmp_path / "eval", "keyword on tickets.csv")
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == 1.0
    assert (out / "confusion.png").stat().st_size > 0
    assert "keyword on tickets.csv" in (out / "report.md").read_text()
    assert "| case |" in (out / "robustness.md").read_text()
