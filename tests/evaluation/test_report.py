"""Confusion-matrix PNG and markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.evaluation import classification_metrics, metrics_markdown, plot_confusion
from modelyard.evaluation.report import MAX_SIDE_INCHES, most_confused

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["billing", "shipping", "returns"]


@pytest.fixture
def metrics() -> dict[str, Any]:
    y = [0, 0, 1, 1, 2, 2]
    probs = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.5, 0.2, 0.3],
        ]
    )
    return classification_metrics(y, probs, LABELS)


def test_plot_confusion_writes_png(tmp_path: Path, metrics: dict[str, Any]) -> None:
    target = tmp_path / "figures" / "confusion.png"
    returned = plot_confusion(metrics["confusion_matrix"], LABELS, target)
    assert returned == target
    assert target.read_bytes()[:8] == PNG_MAGIC


def test_plot_confusion_rejects_mismatched_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["a", "b"], tmp_path / "cm.png")


def test_markdown_has_title_labels_and_headline_numbers(metrics: dict[str, Any]) -> None:
    text = metrics_markdown(metrics, "Support tickets")
    assert text.startswith("# Support tickets\n")
    for label in LABELS:
        assert label in text
    for key in ("accuracy", "macro_f1", "weighted_f1", "ece", "log_loss"):
        assert f"{metrics[key]:.4f}" in text
    assert "| Samples (n) | 6 |" in text
    assert "| billing | 1 | 1 | 0 |" in text  # confusion row: true billing


def test_markdown_speed_and_extra_sections(metrics: dict[str, Any]) -> None:
    assert "## Speed" not in metrics_markdown(metrics, "t")
    speed = {"latency_p50_ms": 12.5, "latency_p95_ms": 20.25, "throughput_b32_per_s": 640.0}
    text = metrics_markdown({**metrics, **speed}, "t", extra={"backbone": "minilm", "cpus": 4})
    assert "## Speed" in text
    assert "12.5000" in text and "20.2500" in text and "640.0000" in text
    assert "| backbone | minilm |" in text
    assert "| cpus | 4 |" in text


def test_markdown_escapes_pipes_in_cells(metrics: dict[str, Any]) -> None:
    text = metrics_markdown(metrics, "t", extra={"note": "a|b"})
    assert "a\\|b" in text


def _many_classes(n: int = 77) -> tuple[list[list[int]], list[str]]:
    labels = [f"intent_{i:02d}" for i in range(n)]
    matrix = np.diag(np.full(n, 5)).astype(int)
    matrix[3, 4], matrix[10, 2], matrix[10, 11] = 4, 2, 1
    return matrix.tolist(), labels


def test_confusion_png_is_capped_for_many_classes(tmp_path: Path) -> None:
    from matplotlib import image

    matrix, labels = _many_classes()
    png = image.imread(plot_confusion(matrix, labels, tmp_path / "c.png"))
    assert max(png.shape[:2]) <= (MAX_SIDE_INCHES + 1) * 120


def test_report_lists_most_confused_pairs_and_drops_the_huge_table() -> None:
    matrix, labels = _many_classes()
    assert most_confused(matrix, labels)[:2] == [
        ("intent_03", "intent_04", 4, 4 / 9),
        ("intent_10", "intent_02", 2, 2 / 8),
    ]
    text = metrics_markdown({"confusion_matrix": matrix, "labels": labels}, "many")
    assert "## Most-confused pairs" in text and "| intent_03 | intent_04 | 4 | 44.4% |" in text
    assert "77 classes: the full matrix is in `metrics.json`" in text
    assert "true \\ predicted" not in text
