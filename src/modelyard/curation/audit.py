"""Label audit: suspected label errors by confident learning, near-duplicates, leakage, outliers.

Class probabilities come from k-fold training of a cheap learner (logistic regression on
frozen, mean-pooled backbone embeddings), of the fine-tuned backbone itself, or from the
training dynamics of one fine-tune on every row; cleanlab turns them into a ranked list of
rows whose given label is probably wrong, with the label the model suggests instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from modelyard.data.splits import DataBundle, Split
from modelyard.errors import DataError
from modelyard.plugins import require
from modelyard.recipe import AuditConfig

ISSUE_COLUMNS = ("split", "file", "row", "text", "given_label", "suggested_label", "label_quality")


def check_folds(labels: np.ndarray, names: list[str], folds: int) -> None:
    """Return None when every class has at least `folds` rows; raise DataError naming the
    smallest class and what to change otherwise."""
    counts = np.bincount(labels, minlength=len(names))
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError("the audit needs at least two classes with rows; found one or none")
    smallest = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    if counts[smallest] < folds:
        raise DataError(
            f"class '{names[smallest]}' has {counts[smallest]} row(s) but the audit's "
            f"{folds}-fold cross-validation needs at least {folds} per class: set "
            f"audit.folds={max(2, int(counts[smallest]))} or add rows of that class"
        )


def embedding_oof_probs(
    features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, c: float = 1.0
) -> np.ndarray:
    """Return out-of-fold class probabilities (n, classes) of a logistic regression on `features`.

    Every row's probabilities come from a model that never saw it (stratified `folds`-fold).
    """
    learner = LogisticRegression(C=c, max_iter=2000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):  # see simulate.py
        warnings.simplefilter("ignore")  # a class absent from one fold is filled with 0 by sklearn
        probs = cross_val_predict(learner, features, labels, cv=cv, method="predict_proba")
    return np.asarray(probs, dtype=np.float64)


def rank_label_issues(labels: np.ndarray, probs: np.ndarray, filter_by: str) -> pd.DataFrame:
    """Return the rows cleanlab flags as label errors, most likely error first.

    Columns: `index` (into `labels`), `given`, `suggested` (class indices) and
    `label_quality` (cleanlab's self-confidence score; low means a likely error).
    Raises MissingExtraError without cleanlab.
    """
    cleanlab = require("cleanlab.filter", extra="data")
    rank = require("cleanlab.rank", extra="data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about classes with few rows
        flagged = cleanlab.find_label_issues(labels, probs, filter_by=filter_by)  # type: ignore[attr-defined]
        quality = rank.get_label_quality_scores(labels, probs)  # type: ignore[attr-defined]
    index = np.nonzero(flagged)[0]
    index = index[np.argsort(quality[index], kind="stable")]
    return pd.DataFrame(
        {
            "index": index,
            "given": labels[index],
            "suggested": probs[index].argmax(axis=1),
            "label_quality": np.round(quality[index], 6),
        }
    )


@dataclass
class AuditRows:
    """Every row the audit looks at, pooled over splits, with where it came from."""

    texts: list[str]
    labels: np.ndarray
    splits: list[str]
    files: list[str]
    rows: list[int]
    names: list[str]

    @classmethod
    def from_bundle(cls, bundle: DataBundle) -> AuditRows:
        """Return the train, dev and test rows of `bundle`, in that order."""
        parts: list[tuple[str, Split]] = [
            ("train", bundle.train),
            ("dev", bundle.dev),
            ("test", bundle.test),
        ]
        texts, labels, splits, files, rows = [], [], [], [], []
        for name, split in parts:
            texts += split.texts
            labels += split.labels
            splits += [name] * len(split)
            files += [split.source] * len(split)
            rows += split.rows or [0] * len(split)
        return cls(texts, np.asarray(labels, dtype=np.int64), splits, files, rows, bundle.labels)


@dataclass
class AuditReport:
    """The findings of one audit; `write` saves them as CSV files, JSON and markdown."""

    issues: pd.DataFrame
    duplicates: pd.DataFrame
    leakage: pd.DataFrame
    outliers: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def find_issues(rows: AuditRows, probs: np.ndarray, cfg: AuditConfig) -> pd.DataFrame:
    """Return the suspected label errors of `rows` as a table with ISSUE_COLUMNS."""
    ranked = rank_label_issues(rows.labels, probs, cfg.rule())
    at = ranked["index"].to_numpy()
    return pd.DataFrame(
        {
            "split": [rows.splits[i] for i in at],
            "file": [rows.files[i] for i in at],
            "row": [rows.rows[i] for i in at],
            "text": [rows.texts[i] for i in at],
            "given_label": [rows.names[i] for i in ranked["given"]],
            "suggested_label": [rows.names[i] for i in ranked["suggested"]],
            "label_quality": ranked["label_quality"].to_numpy(),
        },
        columns=list(ISSUE_COLUMNS),
    )


def _describe(rows: AuditRows, i: int, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}split": rows.splits[i],
        f"{prefix}row": rows.rows[i],
        f"{prefix}label": rows.names[rows.labels[i]],
        f"{prefix}text": rows.texts[i],
    }


def find_duplicates(rows: AuditRows, vectors: np.ndarray, cfg: AuditConfig) -> pd.DataFrame:
    """Return near-duplicate pairs inside the training split (cosine >= the threshold)."""
    from modelyard.curation.neighbours import near_duplicate_pairs

    train = np.array([s == "train" for s in rows.splits])
    at = np.nonzero(train)[0]
    pairs = near_duplicate_pairs(vectors[at], cfg.duplicate_threshold, cfg.max_pairs)
    records = [
        {"similarity": round(s, 4), **_describe(rows, at[i], "a_"), **_describe(rows, at[j], "b_")}
        for i, j, s in pairs
    ]
    return pd.DataFrame(records)


def find_leakage(rows: AuditRows, vectors: np.ndarray, cfg: AuditConfig) -> pd.DataFrame:
    """Return dev/test rows that (nearly) repeat a training row, most similar first."""
    from modelyard.curation.neighbours import leakage_pairs

    splits = np.asarray(rows.splits)
    train, held = np.nonzero(splits == "train")[0], np.nonzero(splits != "train")[0]
    pairs = leakage_pairs(vectors[held], vectors[train], cfg.duplicate_threshold)
    records = [
        {
            "similarity": round(s, 4),
            **_describe(rows, held[i], ""),
            **_describe(rows, train[j], "train_"),
        }
        for i, j, s in pairs[: cfg.max_pairs]
    ]
    return pd.DataFrame(records)


def find_outliers(rows: AuditRows, vectors: np.ndarray, cfg: AuditConfig) -> pd.DataFrame:
    """Return the `cfg.max_outliers` most atypical rows by cleanlab's outlier score."""
    from modelyard.curation.neighbours import outlier_scores

    if len(vectors) < 3 or cfg.max_outliers == 0:
        return pd.DataFrame(columns=["outlier_score", "split", "row", "label", "text"])
    scores = outlier_scores(vectors)
    at = np.argsort(scores, kind="stable")[: cfg.max_outliers]
    records = [{"outlier_score": round(float(scores[i]), 6), **_describe(rows, i, "")} for i in at]
    return pd.DataFrame(records)


def describe_probabilities(cfg: AuditConfig) -> str:
    """Return how the audit's class probabilities were made, in words, for its reports."""
    if cfg.learner == "dynamics":
        return f"averaged over {cfg.snapshots} snapshots per epoch of one fine-tune on every row"
    return f"{cfg.folds}-fold out-of-fold"


def audit_rows(
    rows: AuditRows, vectors: np.ndarray, probs: np.ndarray, cfg: AuditConfig
) -> AuditReport:
    """Return the full audit of `rows` from their unit-length embeddings and the learner's
    class probabilities."""
    report = AuditReport(
        issues=find_issues(rows, probs, cfg),
        duplicates=find_duplicates(rows, vectors, cfg),
        leakage=find_leakage(rows, vectors, cfg),
        outliers=find_outliers(rows, vectors, cfg),
    )
    report.summary = {
        "rows": len(rows.texts),
        "learner": cfg.learner,
        "probabilities": describe_probabilities(cfg),
        "filter_by": cfg.rule(),
        "learner_accuracy": round(float((probs.argmax(axis=1) == rows.labels).mean()), 4),
        "label_issues": len(report.issues),
        "label_issues_by_split": report.issues["split"].value_counts().to_dict(),
        "near_duplicate_pairs": len(report.duplicates),
        "leaked_rows": len(report.leakage),
        "outliers_listed": len(report.outliers),
        "duplicate_threshold": cfg.duplicate_threshold,
    }
    return report


def write_report(report: AuditReport, out: Path) -> dict[str, str]:
    """Write label_issues.csv, near_duplicates.csv, leakage.csv, outliers.csv, audit.json and
    audit.md into `out`; return the paths written, by name."""
    from modelyard.curation.audit_report import audit_markdown
    from modelyard.fsutil import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "label_issues": report.issues,
        "near_duplicates": report.duplicates,
        "leakage": report.leakage,
        "outliers": report.outliers,
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = str(atomic_write_text(out / f"{name}.csv", table.to_csv(index=False)))
    paths["json"] = str(atomic_write_json(out / "audit.json", report.summary))
    paths["markdown"] = str(atomic_write_text(out / "audit.md", audit_markdown(report)))
    report.files = paths
    return paths
