"""Scan a data file for personal data, and write a redacted copy (never over the original)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelyard.data.load import read_table, write_table
from modelyard.data.pii import find_pii, mask, redact
from modelyard.errors import DataError
from modelyard.recipe import PiiConfig

MAX_EXAMPLES = 20


@dataclass
class PiiScan:
    """Counts of personal data in a file: per type, per column, rows affected, masked examples."""

    path: str
    rows: int
    columns: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    by_column: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_with_pii: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    redacted_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the scan as a JSON-serialisable dict."""
        return asdict(self)


def _columns(table_columns: list[str], wanted: list[str] | None, path: Path) -> list[str]:
    if not wanted:
        return table_columns
    missing = [c for c in wanted if c not in table_columns]
    if missing:
        raise DataError(
            f"{path}: no column(s) {', '.join(missing)}; columns are: {', '.join(table_columns)}"
        )
    return wanted


def _check_target(path: Path, redact_to: Path | None) -> None:
    if redact_to is not None and redact_to.resolve() == path.resolve():
        raise DataError(
            f"--redact-to {redact_to} is the file being scanned; the original is never "
            "modified: give another path"
        )


def scan_file(
    path: Path,
    columns: list[str] | None = None,
    cfg: PiiConfig | None = None,
    redact_to: Path | None = None,
) -> PiiScan:
    """Return the personal data found in `columns` (default: all) of a CSV/TSV/JSONL/Parquet file.

    With `redact_to`, also write a copy with every match replaced by its placeholder.
    Examples in the result are masked. Raises DataError for an unreadable file, an unknown
    column, or `redact_to` naming the scanned file itself.
    """
    _check_target(path, redact_to)
    cfg = cfg or PiiConfig()
    table = read_table(path)
    chosen = _columns([str(c) for c in table.columns], columns, path)
    scan = PiiScan(str(path), len(table), chosen)
    totals: Counter[str] = Counter()
    hit_rows: set[int] = set()
    for column in chosen:
        per_column: Counter[str] = Counter()
        for row, text in enumerate(table[column].tolist(), start=1):
            for match in find_pii(text, cfg):
                per_column[match.kind] += 1
                hit_rows.add(row)
                if len(scan.examples) < MAX_EXAMPLES:
                    scan.examples.append(
                        {
                            "row": row,
                            "column": column,
                            "type": match.kind,
                            "value": mask(match.value),
                        }
                    )
            if redact_to is not None:
                table.at[row - 1, column] = redact(text, cfg)[0]
        scan.by_column[column] = dict(per_column)
        totals.update(per_column)
    scan.counts, scan.rows_with_pii = dict(totals), len(hit_rows)
    if redact_to is not None:
        scan.redacted_to = str(write_table(table, redact_to))
    return scan
