"""Read one labelled file against a fixed label set, as evaluation needs it."""

from __future__ import annotations

from pathlib import Path

from modelyard.data.load import read_table
from modelyard.data.splits import Split
from modelyard.data.validate import (
    DataReport,
    check_label_cells,
    drop_empty_texts,
    first_unknown_label,
    select_columns,
)
from modelyard.errors import DataError
from modelyard.recipe import DataConfig


def labelled_split(
    path: Path,
    text_column: str,
    label_column: str,
    labels: list[str],
    pair_column: str | None = None,
) -> tuple[Split, int]:
    """Return the rows of `path` as a Split whose label indices follow `labels`, and how many
    rows were dropped because their text was empty.

    Raises
    DataError for an unreadable file, a missing column, an empty label, or a label that
    is not in `labels`, naming the file and the row.
    """
    cfg = DataConfig(
        path=path, text_column=text_column, label_column=label_column, text_pair_column=pair_column
    )
    source = str(path)
    report = DataReport()
    rows = select_columns(read_table(path), cfg, source)
    rows = drop_empty_texts(rows, cfg, source, report)
    if rows.empty:
        raise DataError(f"{source}: no rows with text left to evaluate")
    check_label_cells(rows, cfg, source)
    unknown = first_unknown_label(rows, labels)
    if unknown is not None:
        row, label, count = unknown
        raise DataError(
            f"{source}, data row {row}: label {label!r} was never seen in training; the model "
            f"knows only: {', '.join(labels)} ({count} row(s) affected). Fix or remove those rows."
        )
    index = {label: i for i, label in enumerate(labels)}
    split = Split(
        texts=rows["text"].tolist(),
        labels=[index[label] for label in rows["label"]],
        pairs=rows["pair"].tolist() if pair_column else None,
        source=source,
    )
    return split, report.removed_rows()


def labelled_split_like(
    path: Path,
    data: DataConfig,
    labels: list[str],
    text_column: str | None = None,
    label_column: str | None = None,
) -> tuple[Split, int]:
    """Return `labelled_split` of `path` read with the columns a run's `data` section names
    (`text_column` and `label_column` override them), and the rows dropped for empty text.

    Raises DataError as `labelled_split` does.
    """
    return labelled_split(
        path,
        text_column or data.text_column,
        label_column or data.label_column,
        labels,
        data.text_pair_column,
    )
