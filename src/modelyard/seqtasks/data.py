"""Rows of the sentence-level tasks beside classification: several labels a text
(multi-label) or a number (regression), read from the same tables as classification data.

A multi-label cell is a JSON list (`["billing", "urgent"]`) or labels joined by
`data.label_separator`; a regression cell is a number. Every problem a user can cause raises
DataError naming the file and row.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.data.load import read_table
from modelyard.errors import DataError
from modelyard.recipe import Recipe


@dataclass
class Rows:
    """Texts and their targets: label lists (multi-label) or numbers (regression)."""

    texts: list[str]
    targets: list[Any]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TaskSplits:
    """Train, dev and test rows, the label set (multi-label) and what the data checks found."""

    train: Rows
    dev: Rows
    test: Rows
    labels: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def parse_labels(cell: str, separator: str) -> list[str]:
    """Return the labels of one multi-label cell: a JSON list, or `separator`-joined labels."""
    text = cell.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return sorted({v.strip() for v in value if v.strip()})
        raise ValueError(f"{cell!r} is not a JSON list of strings")
    return sorted({p.strip() for p in text.split(separator) if p.strip()})


def parse_number(cell: str) -> float:
    """Return the finite number a regression cell holds; raise ValueError otherwise."""
    value = float(cell)
    if not math.isfinite(value):
        raise ValueError(f"{cell!r} is not a finite number")
    return value


def read_rows(path: Path, recipe: Recipe) -> Rows:
    """Return the texts and targets of one file for the recipe's task.

    Raises DataError naming a missing column, an empty text or a target that cannot be read.
    """
    data = recipe.data
    frame = read_table(path, data.format)
    for column in (data.text_column, data.label_column):
        if column not in frame.columns:
            raise DataError(
                f"{path}: no column '{column}' (columns: {', '.join(map(str, frame.columns))}); "
                "set data.text_column and data.label_column"
            )
    texts, targets = [], []
    for number, (text, cell) in enumerate(
        zip(frame[data.text_column], frame[data.label_column], strict=True), 2
    ):
        if not text.strip():
            raise DataError(f"{path}, row {number}: the text is empty")
        try:
            target: Any = (
                parse_number(cell)
                if recipe.task == "regression"
                else parse_labels(cell, data.label_separator)
            )
        except ValueError as exc:
            kind = (
                "a number"
                if recipe.task == "regression"
                else f"a JSON list or labels joined by {data.label_separator!r}"
            )
            raise DataError(f"{path}, row {number}: the target must be {kind}: {exc}") from None
        texts.append(text)
        targets.append(target)
    return Rows(texts, targets)


def _take(rows: Rows, n: int) -> Rows:
    """Remove and return the last `n` rows."""
    keep = len(rows) - n
    taken = Rows(rows.texts[keep:], rows.targets[keep:])
    del rows.texts[keep:]
    del rows.targets[keep:]
    return taken


def load_rows(recipe: Recipe) -> TaskSplits:
    """Return the train/dev/test rows the recipe names (one file is split, seeded), the label
    set and the data checks (label counts; the regression target's range and outliers).

    Raises DataError for unreadable data or too few training rows.
    """
    data = recipe.data
    source = data.path or data.train
    assert source is not None  # the recipe checks that data names a source
    rows = read_rows(source, recipe)
    order = list(range(len(rows)))
    random.Random(recipe.run.seed).shuffle(order)
    rows = Rows([rows.texts[i] for i in order], [rows.targets[i] for i in order])
    total = len(rows)

    def held(path: Path | None, fraction: float) -> Rows:
        if path is not None:
            return read_rows(path, recipe)
        return _take(rows, min(round(fraction * total), max(len(rows) - 1, 0)))

    dev, test = held(data.dev, data.split.dev), held(data.test, data.split.test)
    if data.max_rows is not None:
        rows = Rows(rows.texts[: data.max_rows], rows.targets[: data.max_rows])
    if len(rows) < 2:
        raise DataError(f"{source}: fewer than 2 training rows are left after the dev/test split")
    labels: list[str] = []
    if recipe.task == "multi-label":
        seen = sorted(
            {label for split in (rows, dev, test) for ts in split.targets for label in ts}
        )
        labels = list(data.labels) if data.labels is not None else seen
        missing = sorted(set(seen) - set(labels))
        if missing:
            raise DataError(f"data.labels lacks labels found in the data: {', '.join(missing)}")
        if not labels:
            raise DataError(f"{source}: no row holds a label; multi-label needs at least one")
    report = {
        "rows": {"train": len(rows), "dev": len(dev), "test": len(test)},
        **(
            target_checks(rows.targets)
            if recipe.task == "regression"
            else label_counts(rows.targets, labels)
        ),
    }
    return TaskSplits(rows, dev, test, labels, report)


def label_counts(targets: list[list[str]], labels: list[str]) -> dict[str, Any]:
    """Return how many training rows carry each label, and the mean number of labels a row."""
    counts = {label: sum(label in ts for ts in targets) for label in labels}
    return {
        "label_counts": counts,
        "labels_per_row": round(float(np.mean([len(ts) for ts in targets])), 4),
        "rows_without_labels": sum(not ts for ts in targets),
    }


def target_checks(targets: list[float]) -> dict[str, Any]:
    """Return the regression target's range, mean, spread and its outliers (outside 1.5
    interquartile ranges of the quartiles: Tukey's fences)."""
    y = np.asarray(targets, dtype=float)
    q1, q3 = np.percentile(y, [25, 75])
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    outliers = np.flatnonzero((y < low) | (y > high))
    return {
        "target": {
            "min": float(y.min()),
            "max": float(y.max()),
            "mean": round(float(y.mean()), 6),
            "std": round(float(y.std()), 6),
            "median": float(np.median(y)),
            "outlier_fences": [round(float(low), 6), round(float(high), 6)],
            "outliers": len(outliers),
        }
    }
