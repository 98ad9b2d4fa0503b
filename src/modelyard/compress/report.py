"""The compression report: Pareto front, the pick within an accuracy budget, markdown and PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_COLUMNS = (
    ("name", "variant"),
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("size_mb", "size MiB"),
    ("latency_p50_ms", "p50 ms (b1)"),
    ("throughput_b32_per_s", "texts/s (b32)"),
    ("memory_mb", "memory MiB"),
    ("cost_per_million", "$ / 1M"),
    ("speedup_b32", "speed-up"),
    ("pareto", "Pareto"),
)


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    better_or_equal = (
        a["accuracy"] >= b["accuracy"]
        and a["latency_p50_ms"] <= b["latency_p50_ms"]
        and a["throughput_b32_per_s"] >= b["throughput_b32_per_s"]
    )
    strictly = (
        a["accuracy"] > b["accuracy"]
        or a["latency_p50_ms"] < b["latency_p50_ms"]
        or a["throughput_b32_per_s"] > b["throughput_b32_per_s"]
    )
    return better_or_equal and strictly


def mark_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set `pareto` on every row: True when no other row is at least as accurate, as quick
    at batch 1 and as fast at batch 32, and better on one of them. Returns `rows`."""
    for row in rows:
        row["pareto"] = not any(_dominates(other, row) for other in rows if other is not row)
    return rows


def pick_within_budget(
    rows: list[dict[str, Any]], baseline: float, max_drop: float
) -> dict[str, Any] | None:
    """Return the fastest (batch-32 throughput) row whose accuracy is at most `max_drop` below
    `baseline`, or None when no row qualifies; set `within_budget` on every row."""
    for row in rows:
        row["within_budget"] = row["accuracy"] >= baseline - max_drop - 1e-12
    fitting = [r for r in rows if r["within_budget"]]
    return (
        max(fitting, key=lambda r: (r["throughput_b32_per_s"], -r["latency_p50_ms"]))
        if fitting
        else None
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    # a pipe inside a cell would split it into two columns
    return "" if value is None else str(value).replace("|", "\\|")


def markdown(report: dict[str, Any]) -> str:
    """Return the report as markdown: settings, the variants table and the pick."""
    lines = [
        f"# Compression report: {report['parent']}",
        "",
        f"Test data: {report['test_data']} ({report['test_rows']} rows). Speed: {report['speed_texts']} "
        f"texts, {report['threads']} thread(s), medians of {report['rounds']} interleaved rounds. "
        f"Cost at ${report['price_per_cpu_hour']}/CPU-hour x {report['threads']} CPU(s).",
        "",
        "| " + " | ".join(title for _, title in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for row in report["variants"]:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in _COLUMNS) + " |")
    lines += [
        "",
        "Speed-up is batch-32 throughput over the parent (fp32 PyTorch eager). Memory is the "
        "peak RSS a fresh process adds to serve the variant (load and one batch of 32).",
    ]
    if report.get("max_accuracy_drop") is not None:
        best = report.get("best")
        pick = f"**{best}**" if best else "none of the variants"
        lines += ["", f"Fastest within an accuracy drop of {report['max_accuracy_drop']}: {pick}."]
    failed = report.get("failed") or {}
    for name, error in failed.items():
        lines += ["", f"- {name} failed: {error}"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Draw accuracy against batch-1 p50 latency, Pareto-optimal variants filled; return `path`."""
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row in rows:
        filled = bool(row.get("pareto"))
        ax.scatter(
            row["latency_p50_ms"],
            row["accuracy"],
            s=60,
            marker="o",
            facecolors="tab:blue" if filled else "none",
            edgecolors="tab:blue",
        )
        ax.annotate(
            row["name"],
            (row["latency_p50_ms"], row["accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["latency_p50_ms"])
    ax.plot([r["latency_p50_ms"] for r in front], [r["accuracy"] for r in front], "--", alpha=0.5)
    ax.set_xlabel("latency p50 at batch 1 (ms)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy against latency (filled: Pareto-optimal)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path
