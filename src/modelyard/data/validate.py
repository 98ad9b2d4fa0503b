"""Check and clean labelled rows, and record everything that was found in a DataReport.

Rows travel as a DataFrame with the columns of ``ROW_COLUMNS``: ``text``, ``pair`` (""
when the task has no second text), ``label`` (a str) and ``row`` (the 1-based data row
in the file, for messages). Nothing is removed silently: every removal is a ``Removal``
in the report, with its count and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.errors import DataError
from modelyard.recipe import DataConfig

ROW_COLUMNS: tuple[str, ...] = ("text", "pair", "label", "row")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
MAX_CONFLICT_EXAMPLES = 10
_CELL_CHARS = 80


@dataclass
class Removal:
    """Rows removed by one cleaning step from one file or split."""

    step: str
    source: str
    rows: int
    reason: str


@dataclass
class DataReport:
    """What load_data read, removed, found and produced; see `to_markdown` for a summary.

    files: rows read per file path. sources: where each split's rows came from.
    rows: final rows per split. removed: every removal (step, file, rows, reason).
    duplicates: exact (text, pair, label) repeats in the training data, dropped or not as
    duplicates_dropped says. conflicts: (text, pair) keys seen with several labels, over all
    splits before max_rows, with up to 10 conflict_examples. overlap: dev/test rows whose
    (text, pair) is also in train ("train_dev", "train_test"). class_counts: split -> label
    -> rows. token_lengths: split -> p50/p90/p95/p99/max, when a token counter was given.
    """

    seed: int = 0
    labels: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    removed: list[Removal] = field(default_factory=list)
    duplicates: int = 0
    duplicates_dropped: bool = True
    conflicts: int = 0
    conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    overlap: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    token_lengths: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pii_redacted: dict[str, int] = field(default_factory=dict)  # type -> replacements
    augmented_rows: int = 0  # training rows added by data.augment

    def removed_rows(self) -> int:
        """Return the number of rows removed by all cleaning steps together."""
        return sum(removal.rows for removal in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict (plain str, int, float, list, dict)."""
        return asdict(self)

    def to_markdown(self) -> str:
        """Return the report as markdown: files, splits, removals, balance, quality, lengths."""
        sections = [
            f"# Data report\n\nSeed {self.seed}; labels: {', '.join(self.labels) or '(none)'}",
            _files_section(self),
            _removed_section(self),
            _balance_section(self),
            _quality_section(self),
            _tokens_section(self),
            _warnings_section(self),
        ]
        return "\n\n".join(section for section in sections if section) + "\n"


def _cell(value: object) -> str:
    text = " ".join(str(value).split())  # a newline or run of spaces would break the row
    if len(text) > _CELL_CHARS:
        text = text[: _CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _files_section(report: DataReport) -> str:
    files = _table(["file", "rows read"], list(report.files.items()))
    splits = _table(
        ["split", "rows", "from"],
        [(name, report.rows.get(name, 0), report.sources.get(name, "")) for name in SPLITS],
    )
    return f"## Files read\n\n{files}\n\n## Splits\n\n{splits}"


def _removed_section(report: DataReport) -> str:
    if not report.removed:
        return "## Rows removed\n\nNo rows were removed."
    rows = [(r.step, r.source, r.rows, r.reason) for r in report.removed]
    table = _table(["step", "from", "rows", "reason"], rows)
    return f"## Rows removed\n\n{table}\n\nTotal: {report.removed_rows()} rows."


def _balance_section(report: DataReport) -> str:
    totals = {name: sum(report.class_counts.get(name, {}).values()) for name in SPLITS}
    rows = []
    for label in report.labels:
        cells: list[object] = [label]
        for name in SPLITS:
            count = report.class_counts.get(name, {}).get(label, 0)
            share = f" ({count / totals[name]:.1%})" if totals[name] else ""
            cells.append(f"{count}{share}")
        rows.append(cells)
    return "## Class balance\n\n" + _table(["label", *SPLITS], rows)


def _quality_section(report: DataReport) -> str:
    fate = "dropped" if report.duplicates_dropped else "kept: data.drop_duplicates is false"
    lines = [
        "## Data quality",
        "",
        f"- Exact duplicate (text, pair, label) rows in the training data: "
        f"{report.duplicates} ({fate})",
        f"- Texts seen with more than one label: {report.conflicts} (kept)",
        f"- Dev rows whose text is also in train: {report.overlap.get('train_dev', 0)}",
        f"- Test rows whose text is also in train: {report.overlap.get('train_test', 0)}",
    ]
    if report.pii_redacted:
        found = ", ".join(f"{kind} {n}" for kind, n in sorted(report.pii_redacted.items()))
        lines.append(f"- Personal data replaced (data.redact_pii): {found}")
    if report.augmented_rows:
        lines.append(f"- Augmented training rows added (data.augment): {report.augmented_rows}")
    if report.conflict_examples:
        rows = [
            (ex["text"], ex.get("pair", ""), ", ".join(ex["labels"]))
            for ex in report.conflict_examples
        ]
        lines += [
            "",
            "### Conflicting labels (examples)",
            "",
            _table(["text", "pair", "labels"], rows),
        ]
    return "\n".join(lines)


def _tokens_section(report: DataReport) -> str:
    if not report.token_lengths:
        return ""
    keys = [f"p{q}" for q in PERCENTILES] + ["max"]
    rows = [
        [name] + [f"{stats[k]:g}" for k in keys] for name, stats in report.token_lengths.items()
    ]
    return "## Token lengths\n\n" + _table(["split", *keys], rows)


def _warnings_section(report: DataReport) -> str:
    if not report.warnings:
        return ""
    return "## Warnings\n\n" + "\n".join(f"- {warning}" for warning in report.warnings)


def select_columns(table: pd.DataFrame, cfg: DataConfig, source: str) -> pd.DataFrame:
    """Return the rows of `table` as ROW_COLUMNS, text, pair and label stripped of whitespace.

    Raises DataError naming the file, each missing column, the columns that exist and the
    recipe key that selects the column.
    """
    wanted = [("text", "data.text_column", cfg.text_column)]
    wanted.append(("label", "data.label_column", cfg.label_column))
    if cfg.text_pair_column is not None:
        wanted.append(("pair", "data.text_pair_column", cfg.text_pair_column))
    missing = [(key, column) for _, key, column in wanted if column not in table.columns]
    if missing:
        raise DataError(_missing_columns_message(source, missing, list(table.columns)))
    rows = pd.DataFrame({"pair": ""}, index=table.index)
    for name, _, column in wanted:
        rows[name] = table[column].astype(str).str.strip()
    rows["row"] = np.arange(1, len(table) + 1)
    return rows[list(ROW_COLUMNS)]


def _missing_columns_message(source: str, missing: list[tuple[str, str]], found: list[Any]) -> str:
    problems = "; ".join(f"no column '{column}' (set by {key})" for key, column in missing)
    message = f"{source}: {problems}; columns in the file: {', '.join(repr(str(c)) for c in found)}"
    if len(found) == 1 and any(sep in str(found[0]) for sep in ",;\t|"):
        message += " (one column only: the file may use another separator; check data.format)"
    return message


def drop_empty_texts(
    rows: pd.DataFrame, cfg: DataConfig, source: str, report: DataReport
) -> pd.DataFrame:
    """Return `rows` without those whose text (or text pair) is empty; count them in `report`."""
    checks = [("text", cfg.text_column)]
    if cfg.text_pair_column is not None:
        checks.append(("pair", cfg.text_pair_column))
    keep = pd.Series(True, index=rows.index)
    for name, column in checks:
        empty = keep & rows[name].eq("")
        if empty.any():
            reason = f"column '{column}' is empty or whitespace-only"
            report.removed.append(Removal("empty text", source, int(empty.sum()), reason))
        keep &= ~empty
    return rows[keep]


def check_label_cells(rows: pd.DataFrame, cfg: DataConfig, source: str) -> None:
    """Return None when every row has a label; raise DataError naming the first row without."""
    empty = rows[rows["label"].eq("")]
    if len(empty):
        raise DataError(
            f"{source}, data row {empty['row'].iloc[0]}: the label (column "
            f"'{cfg.label_column}') is empty in {len(empty)} row(s); fill in a label or "
            "remove those rows"
        )


def first_unknown_label(rows: pd.DataFrame, known: Sequence[str]) -> tuple[int, str, int] | None:
    """Return (data row, label, rows affected) of the first label not in `known`, else None."""
    unknown = rows[~rows["label"].isin(list(known))]
    if unknown.empty:
        return None
    return int(unknown["row"].iloc[0]), str(unknown["label"].iloc[0]), len(unknown)


def check_allowed_labels(rows: pd.DataFrame, allowed: Sequence[str], source: str) -> None:
    """Return None when every label is in `allowed` (data.labels); raise DataError otherwise.

    The message names the file, the first offending data row and the allowed labels.
    """
    found = first_unknown_label(rows, allowed)
    if found is not None:
        row, label, count = found
        raise DataError(
            f"{source}, data row {row}: label {label!r} is not in data.labels "
            f"(allowed: {', '.join(allowed)}); {count} row(s) have labels outside that list: "
            "add them to data.labels or fix the rows"
        )


def duplicate_mask(rows: pd.DataFrame) -> pd.Series:
    """Return a boolean Series marking every repeat of an earlier (text, pair, label) row."""
    return rows.duplicated(subset=["text", "pair", "label"], keep="first")


def find_conflicts(rows: pd.DataFrame) -> tuple[int, list[dict[str, Any]]]:
    """Return how many (text, pair) keys carry more than one label, and up to 10 examples."""
    seen: dict[tuple[str, str], set[str]] = {}
    for text, pair, label in zip(rows["text"], rows["pair"], rows["label"], strict=True):
        seen.setdefault((text, pair), set()).add(label)
    conflicted = [(key, labels) for key, labels in seen.items() if len(labels) > 1]
    examples = []
    for (text, pair), labels in conflicted[:MAX_CONFLICT_EXAMPLES]:
        example: dict[str, Any] = {"text": text, "labels": sorted(labels)}
        if pair:
            example["pair"] = pair
        examples.append(example)
    return len(conflicted), examples


def count_overlap(train: pd.DataFrame, other: pd.DataFrame) -> int:
    """Return how many rows of `other` have a (text, pair) that also occurs in `train`."""
    seen = set(zip(train["text"], train["pair"], strict=True))
    return sum(key in seen for key in zip(other["text"], other["pair"], strict=True))


def class_counts(rows: pd.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    """Return the number of rows per label, in `labels` order, zeros included."""
    counts = rows["label"].value_counts()
    return {label: int(counts.get(label, 0)) for label in labels}


def token_lengths(
    rows: pd.DataFrame, count_tokens: Callable[[list[str]], list[int]], pairs: bool
) -> dict[str, float]:
    """Return p50/p90/p95/p99/max of the untruncated token counts of `rows` (text + pair).

    Returns an empty dict for no rows.
    """
    if rows.empty:
        return {}
    counts = np.asarray(count_tokens(rows["text"].tolist()), dtype=float)
    if pairs:
        counts = counts + np.asarray(count_tokens(rows["pair"].tolist()), dtype=float)
    values = np.percentile(counts, PERCENTILES)
    stats = {f"p{q}": float(v) for q, v in zip(PERCENTILES, values, strict=True)}
    stats["max"] = float(counts.max())
    return stats
