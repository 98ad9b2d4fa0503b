"""Turn the data section of a recipe into seeded train/dev/test splits and a DataReport.

One file (``data.path``) is split three ways; with ``data.train`` the user's own dev and
test files are used and any that is missing is split off train. Splits are stratified by
label and depend only on the data and the seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from modelyard.data.load import read_table
from modelyard.data.validate import (
    SPLITS,
    DataReport,
    Removal,
    check_allowed_labels,
    check_label_cells,
    class_counts,
    count_overlap,
    drop_empty_texts,
    duplicate_mask,
    find_conflicts,
    first_unknown_label,
    select_columns,
    token_lengths,
)
from modelyard.errors import DataError
from modelyard.recipe import DataConfig

TokenCounter = Callable[[list[str]], list[int]]


@dataclass
class Split:
    """One split: texts, label indices into DataBundle.labels, and optional second texts."""

    texts: list[str]
    labels: list[int]
    pairs: list[str] | None = None
    source: str = ""
    rows: list[int] | None = None  # 1-based data row of each text in `source`, for reports

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class DataBundle:
    """The three splits, the label names their indices refer to, and the data report."""

    train: Split
    dev: Split
    test: Split
    labels: list[str]
    report: DataReport


@dataclass
class _Part:
    rows: pd.DataFrame
    source: str
    own_file: bool  # False when load_data split it off the training file


def load_data(cfg: DataConfig, seed: int, count_tokens: TokenCounter | None = None) -> DataBundle:
    """Return the cleaned, seeded train/dev/test splits that `cfg` describes, with a report.

    `count_tokens` maps texts to untruncated token counts; given, the report holds length
    percentiles per split. Raises DataError for unreadable files, missing columns, empty or
    unknown labels, dev/test labels absent from train, fewer than two training classes,
    and files too small to split.
    """
    report = DataReport(seed=seed, duplicates_dropped=cfg.drop_duplicates)
    parts = _read_parts(cfg, report)
    _split_missing(parts, cfg, seed, report)
    _check_unseen_labels(parts, report)
    # before max_rows: a conflict is a fact about the data, not about the sample drawn
    everything = pd.concat([parts[name].rows for name in SPLITS])
    report.conflicts, report.conflict_examples = find_conflicts(everything)
    parts["train"] = _limit_rows(parts["train"], cfg.max_rows, seed, report)
    labels = _resolve_labels(cfg, parts["train"])
    _summarise(parts, labels, report, cfg, count_tokens)
    splits = {name: _to_split(parts[name], labels, cfg) for name in SPLITS}
    return DataBundle(splits["train"], splits["dev"], splits["test"], labels, report)


def _read_parts(cfg: DataConfig, report: DataReport) -> dict[str, _Part]:
    files = {"train": cfg.path or cfg.train, "dev": cfg.dev, "test": cfg.test}
    return {
        name: _Part(_read_rows(path, cfg, report, is_train=name == "train"), str(path), True)
        for name, path in files.items()
        if path is not None
    }


def _read_rows(path: Path, cfg: DataConfig, report: DataReport, is_train: bool) -> pd.DataFrame:
    source = str(path)
    table = read_table(path, cfg.format)
    report.files[source] = len(table)
    rows = select_columns(table, cfg, source)
    if cfg.redact_pii:  # first, so no report, sample or split ever holds the raw text
        from modelyard.data.pii import redact_rows

        rows = redact_rows(rows, cfg, report)
    rows = drop_empty_texts(rows, cfg, source, report)
    check_label_cells(rows, cfg, source)
    if cfg.labels is not None:
        check_allowed_labels(rows, cfg.labels, source)
    if is_train:
        rows = _drop_duplicates(rows, cfg.drop_duplicates, source, report)
    return rows


def _drop_duplicates(
    rows: pd.DataFrame, drop: bool, source: str, report: DataReport
) -> pd.DataFrame:
    repeats = duplicate_mask(rows)
    report.duplicates = int(repeats.sum())
    if not drop or not repeats.any():
        return rows
    reason = "exact duplicate of an earlier (text, pair, label) row (data.drop_duplicates)"
    report.removed.append(Removal("duplicates", source, report.duplicates, reason))
    return rows[~repeats]


def held_out_count(fraction: float, total: int) -> int:
    """Return how many of `total` rows a held-out `fraction` takes (at least 1 if above 0)."""
    # the epsilon keeps 0.1 * 30 == 3.0000000000000004 from rounding up to 4
    return max(0, math.ceil(fraction * total - 1e-9))


def _split_missing(parts: dict[str, _Part], cfg: DataConfig, seed: int, report: DataReport) -> None:
    train = parts["train"]
    report.sources = {name: part.source for name, part in parts.items()}
    total = len(train.rows)  # fractions are of the whole file, not of what is left
    rest = train.rows
    for name, fraction in (("test", cfg.split.test), ("dev", cfg.split.dev)):
        if name in parts:
            continue
        what = f"the {name} split (data.split.{name}={fraction:g})"
        rest, held = split_off(rest, held_out_count(fraction, total), seed, what, report)
        parts[name] = _Part(held, train.source, own_file=False)
        report.sources[name] = f"{fraction:.0%} of {train.source}"
    parts["train"] = _Part(rest, train.source, own_file=True)


def split_off(
    rows: pd.DataFrame, n_held: int, seed: int, what: str, report: DataReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (rest, held): a seeded, label-stratified draw of `n_held` rows and the others.

    Labels with a single row stay in `rest`; when stratifying is impossible the draw is
    random, and both cases add a warning to `report`. Raises DataError when `rows` has too
    few rows to hold `n_held` out and keep some.
    """
    if n_held <= 0:
        return rows, rows.iloc[0:0]
    counts = rows["label"].value_counts()
    lonely = rows["label"].isin(counts[counts < 2].index)
    pool = rows[~lonely]
    if n_held >= len(pool):
        raise DataError(
            f"too few rows for {what}: {len(rows)} usable row(s), {n_held} to hold out; "
            "add data or hold out fewer rows"
        )
    if lonely.any():
        names = ", ".join(sorted(map(str, rows.loc[lonely, "label"])))
        report.warnings.append(f"{what}: label(s) {names} have one row only; kept in train")
    rest, held = _stratified_draw(pool, n_held, seed, what, report)
    return pd.concat([rest, rows[lonely]]).sort_index(), held.sort_index()


def _stratified_draw(
    pool: pd.DataFrame, n_held: int, seed: int, what: str, report: DataReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        rest, held = train_test_split(
            pool, test_size=n_held, random_state=seed, stratify=pool["label"]
        )
    except ValueError as exc:  # e.g. fewer rows to draw than there are classes
        report.warnings.append(f"{what}: cannot stratify by label ({exc}); drew rows at random")
        rest, held = train_test_split(pool, test_size=n_held, random_state=seed)
    return rest, held


def _check_unseen_labels(parts: dict[str, _Part], report: DataReport) -> None:
    train = parts["train"]
    for name in ("dev", "test"):
        known = sorted(set(train.rows["label"]))
        found = first_unknown_label(parts[name].rows, known)
        if found is None:
            continue
        row, label, count = found
        if parts[name].own_file:
            raise DataError(
                f"{parts[name].source}, data row {row}: label {label!r} never occurs in the "
                f"training data ({train.source}); {count} {name} row(s) have labels the model "
                "cannot learn: add training examples of them or remove those rows"
            )
        train = _move_unknown_to_train(parts, name, known, report)


def _move_unknown_to_train(
    parts: dict[str, _Part], name: str, known: list[str], report: DataReport
) -> _Part:
    # only a random (unstratified) draw can take every row of a label out of train; the
    # model could never predict such a label, so those rows go back to train
    held = parts[name].rows
    unknown = ~held["label"].isin(known)
    moved = sorted(set(held.loc[unknown, "label"]))
    report.warnings.append(
        f"{name} split: {int(unknown.sum())} row(s) with label(s) {', '.join(moved)} "
        "absent from train were moved to train"
    )
    train = parts["train"]
    parts[name] = _Part(held[~unknown], parts[name].source, own_file=False)
    parts["train"] = _Part(pd.concat([train.rows, held[unknown]]).sort_index(), train.source, True)
    return parts["train"]


def _limit_rows(train: _Part, max_rows: int | None, seed: int, report: DataReport) -> _Part:
    if max_rows is None or len(train.rows) <= max_rows:
        return train
    n_unused = len(train.rows) - max_rows
    what = f"data.max_rows={max_rows}"
    kept, unused = split_off(train.rows, n_unused, seed, what, report)
    reason = f"{what}: a stratified sample of {max_rows} training rows is used"
    report.removed.append(Removal("max_rows", train.source, len(unused), reason))
    return _Part(kept, train.source, train.own_file)


def _label_order(label: str) -> tuple[int, int, str]:
    # integer labels sort as numbers (2 before 10), the rest alphabetically after them
    if re.fullmatch(r"-?[0-9]+", label):
        return (0, int(label), label)  # label breaks ties such as "7" and "07"
    return (1, 0, label)


def _resolve_labels(cfg: DataConfig, train: _Part) -> list[str]:
    present = set(train.rows["label"])
    if len(present) < 2:
        hint = " (data.max_rows may be too small)" if cfg.max_rows else ""
        raise DataError(
            f"{train.source}: the training data has {len(present)} class(es) "
            f"({', '.join(sorted(present)) or 'none'}); a classifier needs at least 2{hint}; "
            f"check data.label_column (now '{cfg.label_column}')"
        )
    if cfg.labels is None:
        return sorted(present, key=_label_order)
    repeated = sorted({label for label in cfg.labels if cfg.labels.count(label) > 1})
    if repeated:
        raise DataError(f"data.labels lists {', '.join(repeated)} more than once")
    return list(cfg.labels)


def _summarise(
    parts: dict[str, _Part],
    labels: list[str],
    report: DataReport,
    cfg: DataConfig,
    count_tokens: TokenCounter | None,
) -> None:
    report.labels = list(labels)
    report.rows = {name: len(parts[name].rows) for name in SPLITS}
    report.class_counts = {name: class_counts(parts[name].rows, labels) for name in SPLITS}
    train = parts["train"].rows
    report.overlap = {
        "train_dev": count_overlap(train, parts["dev"].rows),
        "train_test": count_overlap(train, parts["test"].rows),
    }
    if count_tokens is not None:
        pairs = cfg.text_pair_column is not None
        stats = {name: token_lengths(parts[name].rows, count_tokens, pairs) for name in SPLITS}
        report.token_lengths = {name: value for name, value in stats.items() if value}


def _to_split(part: _Part, labels: list[str], cfg: DataConfig) -> Split:
    index = {label: i for i, label in enumerate(labels)}
    rows = part.rows
    pairs = rows["pair"].tolist() if cfg.text_pair_column is not None else None
    return Split(
        texts=rows["text"].tolist(),
        labels=[index[label] for label in rows["label"]],
        pairs=pairs,
        source=part.source,
        rows=[int(r) for r in rows["row"]],
    )
