"""Human-readable evaluation reports: a confusion-matrix PNG and a markdown summary."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Figure + FigureCanvasAgg instead of pyplot: renders headless and never touches the
# process-wide backend or pyplot's global figure list.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_HEADLINE = (
    ("accuracy", "Accuracy"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_f1", "Macro F1"),
    ("weighted_precision", "Weighted precision"),
    ("weighted_recall", "Weighted recall"),
    ("weighted_f1", "Weighted F1"),
    ("ece", "ECE"),
    ("log_loss", "Log loss"),
    ("n", "Samples (n)"),
)
_SPEED = (
    ("latency_p50_ms", "Latency p50 (ms, batch 1)"),
    ("latency_p95_ms", "Latency p95 (ms, batch 1)"),
    ("throughput_b32_per_s", "Throughput (texts/s, batch 32)"),
)
_SPEED_TAIL = (("batch_size", "Batch size"), ("peak_rss_mb", "Peak RSS (MiB)"))
_THROUGHPUT_KEY = re.compile(r"throughput_b(\d+)_per_s")


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> Path:
    """Draw ``matrix`` (rows true, columns predicted) as a heatmap with counts in its cells.

    Creates missing parent directories of ``path``.
    Returns ``path``, now holding a PNG image.
    Raises ValueError if ``matrix`` is not square with one row per label; OSError if the
    file cannot be written.
    """
    counts = np.asarray(matrix)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(
            f"matrix must be {len(labels)}x{len(labels)} to match the labels; "
            f"got shape {counts.shape}"
        )
    side = max(4.0, 0.6 * len(labels) + 2.0)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    _label_axes(ax, labels)
    _annotate_cells(ax, counts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path


def _label_axes(ax: Any, labels: list[str]) -> None:
    ticks = range(len(labels))
    # Matplotlib reads text between two "$" as math; labels are plain text.
    labels = [str(label).replace("$", r"\$") for label in labels]
    ax.set_xticks(ticks, labels=labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title("Confusion matrix")


def _annotate_cells(ax: Any, counts: np.ndarray) -> None:
    # Switch to white text on dark cells so every count stays readable.
    threshold = counts.max() / 2 if counts.size else 0
    for (row, col), value in np.ndenumerate(counts):
        colour = "white" if value > threshold else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour)


def metrics_markdown(
    metrics: dict[str, Any],
    title: str,
    extra: dict[str, Any] | None = None,
    notes: Sequence[tuple[str, str]] = (),
) -> str:
    """Render a metrics dict from ``classification_metrics`` as a markdown report.

    Sections: headline table, warnings, ``notes`` (label, sentence) pairs, per-class table,
    confusion matrix, then speed figures (any of ``latency_p50_ms``, ``latency_p95_ms``,
    ``throughput_b<N>_per_s``, ``batch_size``, ``peak_rss_mb`` present in ``metrics``) and
    a table of ``extra`` key/values, each only when there is something to show. Missing
    headline metrics are skipped.
    Returns the markdown text, ending with a newline.
    Raises ValueError if the confusion matrix does not have one row per label.
    """
    sections = [f"# {title}", _headline_section(metrics)]
    sections += [f"**Warning:** {w}." for w in metrics.get("warnings", [])]
    sections += [f"**{label}:** {text}." for label, text in notes]
    sections.append(_per_class_section(metrics.get("per_class", {})))
    sections.append(_confusion_section(metrics.get("confusion_matrix"), metrics.get("labels")))
    sections.append(_speed_section(metrics))
    sections.append(_key_value_section("Details", (extra or {}).items()))
    return "\n\n".join(section for section in sections if section) + "\n"


def _headline_section(metrics: dict[str, Any]) -> str:
    rows = [(name, metrics[key]) for key, name in _HEADLINE if key in metrics]
    return _key_value_section("Summary", rows, header=("Metric", "Value"))


def _per_class_section(per_class: dict[str, dict[str, Any]]) -> str:
    if not per_class:
        return ""
    columns = ("precision", "recall", "f1", "support")
    rows = [[label, *(scores.get(c, "") for c in columns)] for label, scores in per_class.items()]
    return "## Per class\n\n" + _table(("Label", "Precision", "Recall", "F1", "Support"), rows)


def _confusion_section(matrix: list[list[int]] | None, labels: list[str] | None) -> str:
    if not matrix or not labels:
        return ""
    rows = [[label, *counts] for label, counts in zip(labels, matrix, strict=True)]
    intro = "Rows are true labels, columns predicted labels.\n\n"
    return "## Confusion matrix\n\n" + intro + _table(("true \\ predicted", *labels), rows)


def _speed_section(metrics: dict[str, Any]) -> str:
    named = dict(_SPEED)
    rows = [(name, metrics[key]) for key, name in _SPEED if key in metrics]
    for key in sorted(metrics):
        match = _THROUGHPUT_KEY.fullmatch(key)
        if match and key not in named:
            rows.append((f"Throughput (texts/s, batch {match.group(1)})", metrics[key]))
    rows += [(name, metrics[key]) for key, name in _SPEED_TAIL if key in metrics]
    return _key_value_section("Speed", rows)


def _key_value_section(
    heading: str, rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("Key", "Value")
) -> str:
    body = [list(row) for row in rows]
    return f"## {heading}\n\n" + _table(header, body) if body else ""


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    lines = [_row(header), "|" + "---|" * len(header)]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float | np.floating):
        return _format_float(float(value))
    # A pipe inside a cell would split it into two columns.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _format_float(value: float) -> str:
    # Four decimals suit scores in [0, 1]; tiny latencies and big rates need other forms.
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.1f}"
