"""Faithfulness reports as markdown: one table per metric, methods next to random."""

from __future__ import annotations

from typing import Any

from modelyard.explainability.faithfulness import RANDOM, FaithfulnessReport


def _metric_table(report: FaithfulnessReport, metric: str, note: str) -> list[str]:
    keys = [f"{k:g}" for k in report.k_percent]
    lines = [
        f"## {metric.capitalize()} ({note})",
        "",
        "| method | " + " | ".join(f"{k}%" for k in keys) + " | AOPC |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for name, m in report.methods.items():
        means, sems = getattr(m, metric), getattr(m, f"{metric}_sem")
        cells = [f"{means[k]:.4f} ± {sems[k]:.4f}" for k in keys]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {getattr(m, f'{metric}_aopc'):.4f} |"
        )
    return [*lines, ""]


def faithfulness_markdown(report: FaithfulnessReport, settings: dict[str, Any]) -> str:
    """Return the report as markdown: comprehensiveness, sufficiency, ratios and timings."""
    keys = [f"{k:g}" for k in report.k_percent]
    lines = [
        "# Faithfulness of explanations",
        "",
        f"{report.n_texts} texts ({report.skipped_empty} empty skipped); settings: {settings}.",
        "Top-k% of words by attribution (at least one word); mean ± standard error.",
        "",
        *_metric_table(
            report, "comprehensiveness", "drop when the top words are removed; higher is better"
        ),
        *_metric_table(
            report, "sufficiency", "drop when only the top words are kept; lower is better"
        ),
        "## Comprehensiveness over random, and time",
        "",
        "| method | " + " | ".join(f"{k}%" for k in keys) + " | AOPC | ms per explanation |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for name, m in report.methods.items():
        if name == RANDOM:
            continue
        ratios = [f"{report.ratio(name, k):.2f}x" for k in report.k_percent]
        lines.append(
            f"| {name} | "
            + " | ".join(ratios)
            + f" | {report.ratio(name):.2f}x | {m.ms_per_explanation} |"
        )
    return "\n".join(lines) + "\n"
