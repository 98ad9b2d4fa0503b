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
    ("pareto", "Pareto b1"),
    ("pareto_b32", "Pareto b32"),
)


# The two views a variant is picked by, each the axes of one panel of accuracy_vs_latency.png:
# accuracy against batch-1 latency (lower is better) and against batch-32 throughput (higher).
# A variant is marked on a view when no other variant beats it on both of that view's axes.
FRONTS = {
    "pareto": ("latency_p50_ms", "lower"),
    "pareto_b32": ("throughput_b32_per_s", "higher"),
}


def dominates(a: dict[str, Any], b: dict[str, Any], speed: str, better: str) -> bool:
    """Return True when `a` is at least as accurate and as fast as `b` on the `speed` axis
    (`better`: "lower" or "higher" is faster), and strictly better on one of the two."""
    sign = -1.0 if better == "lower" else 1.0
    fast_a, fast_b = sign * a[speed], sign * b[speed]
    at_least = a["accuracy"] >= b["accuracy"] and fast_a >= fast_b
    return at_least and (a["accuracy"] > b["accuracy"] or fast_a > fast_b)


def mark_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set `pareto` (accuracy against batch-1 latency) and `pareto_b32` (accuracy against
    batch-32 throughput) on every row: True when no other row dominates it on those two axes,
    the axes plotted. Returns `rows`."""
    for flag, (speed, better) in FRONTS.items():
        for row in rows:
            row[flag] = not any(
                dominates(other, row, speed, better) for other in rows if other is not row
            )
    return rows


def pareto_consistent(rows: list[dict[str, Any]]) -> bool:
    """Return True when every row marked on a view is undominated on that view's axes."""
    return all(
        not any(dominates(other, row, speed, better) for other in rows if other is not row)
        for flag, (speed, better) in FRONTS.items()
        for row in rows
        if row.get(flag)
    )


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
        *(
            [f"Accuracy here is the {report['accuracy_metric']}.", ""]
            if report.get("accuracy_metric")
            else [""]
        ),
        "| " + " | ".join(title for _, title in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for row in report["variants"]:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in _COLUMNS) + " |")
    lines += [
        "",
        "Speed-up is batch-32 throughput over the parent (fp32 PyTorch eager). Memory is the "
        "variant's own: the peak RSS of a fresh process that loads it and predicts the speed "
        "texts, minus that of a process with the same imports that loads nothing. Pareto b1: "
        "no other variant is at least as accurate and as quick at batch 1, and better on one "
        "(the left panel of accuracy_vs_latency.png); Pareto b32: the same against batch-32 "
        "throughput (the right panel).",
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
    """Draw accuracy against batch-1 p50 latency (left) and batch-32 throughput (right), the
    variants on each panel's Pareto front filled and joined; return `path`."""
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    panels = (
        ("pareto", "latency p50 at batch 1 (ms, lower is better)"),
        ("pareto_b32", "throughput at batch 32 (texts/s, higher is better)"),
    )
    for i, (flag, label) in enumerate(panels, start=1):
        _panel(fig.add_subplot(1, 2, i), rows, flag, label)
    fig.suptitle("Accuracy against speed (filled: Pareto-optimal on that panel's axes)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path


def _panel(ax: Any, rows: list[dict[str, Any]], flag: str, label: str) -> None:
    speed = FRONTS[flag][0]
    for row in rows:
        filled = bool(row.get(flag))
        ax.scatter(
            row[speed],
            row["accuracy"],
            s=60,
            marker="o",
            facecolors="tab:blue" if filled else "none",
            edgecolors="tab:blue",
        )
        ax.annotate(
            row["name"],
            (row[speed], row["accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    front = sorted((r for r in rows if r.get(flag)), key=lambda r: r[speed])
    ax.plot([r[speed] for r in front], [r["accuracy"] for r in front], "--", alpha=0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("accuracy")
