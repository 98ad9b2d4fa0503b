"""The markdown summary of a label audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from modelyard.data.validate import _table

if TYPE_CHECKING:
    from modelyard.curation.audit import AuditReport

SHOWN = 20  # rows per table in the markdown; the CSV files hold all of them


def _section(title: str, table: pd.DataFrame, columns: list[str], note: str) -> str:
    if table.empty:
        return f"## {title}\n\nNone found."
    rows = table[columns].head(SHOWN).itertuples(index=False, name=None)
    more = f"\n\nFirst {SHOWN} of {len(table)}; all in the CSV file." if len(table) > SHOWN else ""
    return f"## {title}\n\n{note}\n\n{_table(columns, list(rows))}{more}"


def audit_markdown(report: AuditReport) -> str:
    """Return the audit as markdown: summary, label issues, near-duplicates, leakage, outliers."""
    s = report.summary
    head = (
        f"# Label audit\n\n{s['rows']} rows; class probabilities from the `{s['learner']}` "
        f"learner, {s['probabilities']} (accuracy on the given labels "
        f"{s['learner_accuracy']:.4f}); label errors by cleanlab (`{s['filter_by']}`).\n\n"
        f"- Suspected label errors: {s['label_issues']}\n"
        f"- Near-duplicate training pairs (cosine >= {s['duplicate_threshold']}): "
        f"{s['near_duplicate_pairs']}\n"
        f"- Dev/test rows (nearly) repeating a training row: {s['leaked_rows']}"
    )
    sections = [
        head,
        _section(
            "Suspected label errors",
            report.issues,
            ["split", "row", "given_label", "suggested_label", "label_quality", "text"],
            "Lowest label quality first: check these labels before anything else.",
        ),
        _section(
            "Near-duplicates in train",
            report.duplicates,
            ["similarity", "a_row", "a_label", "a_text", "b_row", "b_label", "b_text"],
            "Pairs with different labels are label conflicts; the rest inflate their weight.",
        ),
        _section(
            "Leakage: dev/test rows that repeat a training row",
            report.leakage,
            ["similarity", "split", "row", "text", "train_row", "train_text"],
            "These make held-out scores optimistic; remove them from dev/test or from train.",
        ),
        _section(
            "Outliers",
            report.outliers,
            ["outlier_score", "split", "row", "label", "text"],
            "Least typical rows (cleanlab outlier score, lower is stranger): "
            "garbage, another language, or a class of their own.",
        ),
    ]
    return "\n\n".join(sections) + "\n"
