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
# beyond this many classes the heatmap drops its cell counts and the report its full table
# (a 77-class matrix was a 5,904 px PNG and a 78-column markdown table)
MAX_ANNOTATED_CLASSES = 20
# the confusion PNG is at most this many inches a side (at 120 dpi: 1,440 px)
MAX_SIDE_INCHES = 12.0
MOST_CONFUSED = 10


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
    side = min(MAX_SIDE_INCHES, max(4.0, 0.6 * len(labels) + 2.0))
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    _label_axes(ax, labels)
    if len(labels) <= MAX_ANNOTATED_CLASSES:
        _annotate_cells(ax, counts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path


def _label_axes(ax: Any, labels: list[str]) -> None:
    ticks = range(len(labels))
    # Matplotlib reads text between two "$" as math; labels are plain text.
    labels = [str(label).replace("$", r"\$") for label in labels]
    # tick labels shrink with the class count so the capped figure still names every class
    size = max(3.0, min(10.0, 400.0 / max(len(labels), 1)))
    ax.set_xticks(
        ticks, labels=labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=size
    )
    ax.set_yticks(ticks, labels=labels, fontsize=size)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title("Confusion matrix")


def _annotate_cells(ax: Any, counts: np.ndarray) -> None:
    # Switch to white text on dark cells so every count stays readable.
    threshold = counts.max() / 2 if counts.size else 0
    for (row, col), value in np.ndenumerate(counts):
        colour = "white" if value > threshold else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour)


def plot_training(
    losses: Sequence[tuple[int, float]], dev: Sequence[dict[str, Any]], metric: str, path: Path
) -> Path:
    """Draw the training curve: the loss per optimizer step (left axis) and the dev `metric`
    per evaluation (right axis). `losses` are (step, loss); `dev` rows have `step` and `metric`.

    Returns `path`, now holding a PNG image.
    """
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if losses:
        steps, values = zip(*losses, strict=True)
        ax.plot(steps, values, color="tab:blue", linewidth=1, label="training loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss", color="tab:blue")
    points = [(row["step"], row[metric]) for row in dev if row.get(metric) is not None]
    if points:
        right = ax.twinx()
        steps, values = zip(*points, strict=True)
        right.plot(steps, values, "o-", color="tab:orange", label=f"dev {metric}")
        right.set_ylabel(f"dev {metric}", color="tab:orange")
    ax.set_title("Training")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def history_section(history: Sequence[dict[str, Any]]) -> str:
    """Return the dev evaluations during training as a markdown table ("" when there are none)."""
    if not history:
        return ""
    columns = [k for k in history[0] if k not in ("step", "epoch")]
    rows = [[row.get("step"), row.get("epoch"), *(row.get(c) for c in columns)] for row in history]
    body = _table(("Step", "Epoch", *(f"dev {c}" for c in columns)), rows)
    return "## Training history\n\n" + body + "\n\nThe curve is in `training.png`."


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
    details = dict(extra or {})
    sections.append(history_section(details.pop("history", None) or []))
    sections.append(_key_value_section("Details", details.items()))
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


def most_confused(
    matrix: list[list[int]], labels: list[str], k: int = MOST_CONFUSED
) -> list[tuple[str, str, int, float]]:
    """Return the `k` largest off-diagonal cells as (true, predicted, count, share of the true
    class's rows), largest first; empty when nothing is confused."""
    counts = np.asarray(matrix)
    totals = counts.sum(axis=1)
    cells = [
        (int(counts[i, j]), i, j)
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and counts[i, j] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(labels[i], labels[j], n, n / int(totals[i])) for n, i, j in cells[:k]]


def _confusion_section(matrix: list[list[int]] | None, labels: list[str] | None) -> str:
    if not matrix or not labels:
        return ""
    pairs = most_confused(matrix, labels)
    confused = (
        "## Most-confused pairs\n\n"
        + _table(
            ("True", "Predicted as", "Count", "Share of true"),
            [[t, p, n, f"{share:.1%}"] for t, p, n, share in pairs],
        )
        if pairs
        else ""
    )
    if len(labels) > MAX_ANNOTATED_CLASSES:
        note = (
            f"## Confusion matrix\n\n{len(labels)} classes: the full matrix is in "
            "`metrics.json` (`confusion_matrix`) and `confusion.png`."
        )
        return "\n\n".join(part for part in (confused, note) if part)
    rows = [[label, *counts] for label, counts in zip(labels, matrix, strict=True)]
    intro = "Rows are true labels, columns predicted labels.\n\n"
    full = "## Confusion matrix\n\n" + intro + _table(("true \\ predicted", *labels), rows)
    return "\n\n".join(part for part in (confused, full) if part)


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
