"""Near-duplicates, train/test leakage and outliers, found on unit-length text embeddings."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import numpy as np

from modelyard.plugins import require

_BLOCK = 1024  # rows per similarity block: a 1024 x n float32 slab stays small


def _blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, _BLOCK):
        yield slice(start, min(start + _BLOCK, n))


def near_duplicate_pairs(
    vectors: np.ndarray, threshold: float, limit: int | None = None
) -> list[tuple[int, int, float]]:
    """Return (i, j, cosine) for every pair i < j of rows whose cosine is at least `threshold`.

    `vectors` must be unit length. Pairs come most similar first, at most `limit` of them.
    """
    pairs: list[tuple[int, int, float]] = []
    for rows in _blocks(len(vectors)):
        sims = vectors[rows] @ vectors.T
        for offset, j in zip(*np.nonzero(sims >= threshold), strict=True):
            i = rows.start + int(offset)
            if i < int(j):
                pairs.append((i, int(j), float(sims[offset, j])))
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs[:limit] if limit is not None else pairs


def nearest_in(queries: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, for every query row, the index of its most similar reference row and the cosine."""
    index = np.zeros(len(queries), dtype=np.int64)
    best = np.full(len(queries), -1.0, dtype=np.float32)
    if len(reference) == 0:
        return index, best
    for rows in _blocks(len(queries)):
        sims = queries[rows] @ reference.T
        index[rows] = sims.argmax(axis=1)
        best[rows] = sims.max(axis=1)
    return index, best


def leakage_pairs(
    held_out: np.ndarray, train: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """Return (held-out row, nearest train row, cosine) for held-out rows at least `threshold`
    similar to some training row, most similar first."""
    index, best = nearest_in(held_out, train)
    hits = [(int(i), int(index[i]), float(best[i])) for i in np.nonzero(best >= threshold)[0]]
    return sorted(hits, key=lambda p: (-p[2], p[0]))


def outlier_scores(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Return cleanlab's out-of-distribution score per row: near 0 is atypical, near 1 typical.

    The score falls with the mean distance to the row's `k` nearest neighbours. Needs more
    than one row; raises MissingExtraError without cleanlab.
    """
    outlier = require("cleanlab.outlier", extra="data")
    detector = outlier.OutOfDistribution(params={"k": max(1, min(k, len(vectors) - 1))})  # type: ignore[attr-defined]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # cleanlab warns when it lowers k for a small set
        return np.asarray(detector.fit_score(features=vectors), dtype=np.float64)
