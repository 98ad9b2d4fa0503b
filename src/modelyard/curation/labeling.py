"""The labelling loop: pick the pool rows to label next with a trained run, and merge the
rows people labelled back into the training file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelyard.curation.active import NEEDS_EMBEDDINGS, QueryContext, select
from modelyard.data.load import read_table, write_table
from modelyard.errors import DataError
from modelyard.registry.run import LoadedRun


def _column(table: pd.DataFrame, column: str, source: Path, option: str) -> pd.Series:
    if column not in table.columns:
        raise DataError(
            f"{source}: no column '{column}'; columns are: {', '.join(map(str, table.columns))}. "
            f"Pass {option} NAME."
        )
    return table[column].astype(str).str.strip()


def _labelled_texts(paths: list[Path], text_column: str) -> set[str]:
    texts: set[str] = set()
    for path in paths:
        texts |= set(_column(read_table(path), text_column, path, "--text-column"))
    return texts


def _run_training_files(run: LoadedRun) -> list[Path]:
    data = run.recipe.data
    found = (data.path, data.train, data.dev, data.test)
    return [p for p in found if p is not None and p.is_file()]


@dataclass
class LabelBatch:
    """The rows written for labelling and why the other pool rows were left out."""

    path: Path
    picked: int
    candidates: int
    skipped_labelled: int
    skipped_empty: int
    skipped_short: int = 0


def word_counts(texts: pd.Series) -> pd.Series:
    """Return the number of whitespace-separated words of each text."""
    return texts.astype(str).map(lambda text: len(text.split()))


def _candidates(
    table: pd.DataFrame,
    pool: Path,
    text_column: str,
    label_column: str,
    known: set[str],
    min_words: int,
) -> tuple[np.ndarray, int, int, int]:
    texts = _column(table, text_column, pool, "--text-column")
    done = texts.isin(known)
    if label_column in table.columns:
        done |= table[label_column].astype(str).str.strip().ne("")
    empty = texts.eq("") & ~done
    open_rows = ~done & ~empty
    short = open_rows & word_counts(texts).lt(min_words)
    keep = open_rows & ~short
    if min_words > 0 and not keep.any():
        raise DataError(
            f"{pool}: of {int(open_rows.sum())} candidate row(s), 0 have at least {min_words} "
            "words; lower --min-words"
        )
    return np.nonzero(keep.to_numpy())[0], int(done.sum()), int(empty.sum()), int(short.sum())


def _context(
    run: LoadedRun, texts: list[str], known: set[str], strategy: str, seed: int
) -> QueryContext:
    from modelyard.inference import predict_proba

    ctx = QueryContext(predict_proba(run, texts).probs, np.random.default_rng(seed))
    if strategy in NEEDS_EMBEDDINGS:
        from modelyard.curation.embed import Embedder

        embedder = Embedder.from_backbone(run.recipe.model.backbone, run.max_length)
        ctx.embeddings = embedder.encode(texts)
        ctx.labelled = embedder.encode(sorted(known))
    return ctx


def next_batch(
    run: LoadedRun,
    pool: Path,
    k: int,
    strategy: str,
    output: Path,
    text_column: str = "text",
    label_column: str = "label",
    labelled: list[Path] | None = None,
    seed: int = 0,
    min_words: int = 0,
) -> LabelBatch:
    """Write the k pool rows `strategy` most wants labelled to `output`, best first; return a summary.

    Rows that already have a label, or whose text is in `labelled` (default: the run's own
    data files), are never picked, nor rows of fewer than `min_words` words (fragments an
    annotator cannot judge, or unlike the texts the model will see). The output keeps the
    pool's columns, adds `al_rank`, `predicted_label` and `predicted_score`, and an empty
    label column to fill in.
    Raises DataError for a bad pool file, a missing column or an impossible k, and
    UnknownPluginError for an unknown strategy.
    """
    table = read_table(pool)
    known = _labelled_texts(
        labelled if labelled is not None else _run_training_files(run), text_column
    )
    at, done, empty, short = _candidates(table, pool, text_column, label_column, known, min_words)
    texts = [str(table[text_column].iloc[i]).strip() for i in at]
    ctx = _context(run, texts, known, strategy, seed)
    picks = select(strategy, ctx, k)
    chosen = table.iloc[at[picks]].copy()
    chosen["al_rank"] = np.arange(1, len(picks) + 1)
    chosen["predicted_label"] = [run.labels[i] for i in ctx.probs[picks].argmax(axis=1)]
    chosen["predicted_score"] = np.round(ctx.probs[picks].max(axis=1), 6)
    chosen[label_column] = ""
    write_table(chosen, output)
    return LabelBatch(output, len(picks), len(at), done, empty, short)


@dataclass
class ImportResult:
    """What `import_labels` merged: rows added, and rows skipped with the reason."""

    path: Path
    added: int
    skipped_unlabelled: int
    skipped_known: int
    labels_added: list[str]


def _check_new_labels(new: pd.Series, old: pd.Series, source: Path, allow: bool) -> list[str]:
    unseen = sorted(set(new) - set(old))
    if unseen and not allow:
        raise DataError(
            f"{source}: label(s) {', '.join(map(repr, unseen))} do not occur in the training file "
            f"(its labels: {', '.join(sorted(set(old)))}); fix the typo or pass --allow-new-labels"
        )
    return unseen


def import_labels(
    labelled: Path,
    into: Path,
    output: Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    allow_new_labels: bool = False,
) -> ImportResult:
    """Append the rows of `labelled` that have a label to the training file `into`, writing
    the result atomically to `output` (default: `into` itself); return what was merged.

    Rows without a label and texts already in `into` are skipped and counted; only the
    columns of `into` are kept. Raises DataError for missing columns or labels the training
    file has never seen (unless `allow_new_labels`).
    """
    new, old = read_table(labelled), read_table(into)
    texts = _column(new, text_column, labelled, "--text-column")
    labels = _column(new, label_column, labelled, "--label-column")
    old_texts = _column(old, text_column, into, "--text-column")
    old_labels = _column(old, label_column, into, "--label-column")
    has_label = labels.ne("")
    known = texts.isin(set(old_texts)) & has_label
    keep = has_label & ~known & ~texts.duplicated()
    added = _check_new_labels(labels[keep], old_labels, labelled, allow_new_labels)
    rows = new.loc[keep].reindex(columns=old.columns, fill_value="")
    rows[text_column], rows[label_column] = texts[keep], labels[keep]
    path = write_table(pd.concat([old, rows], ignore_index=True), output or into)
    return ImportResult(path, int(keep.sum()), int((~has_label).sum()), int(known.sum()), added)
