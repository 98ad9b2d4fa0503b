"""The contract of active-learning query strategies (`modelyard.curation.active.STRATEGIES`)."""

from __future__ import annotations

import numpy as np

from modelyard.curation.active import STRATEGIES, QueryContext, Strategy
from modelyard.testing.contract import Contract


def query_context(
    n: int = 60, classes: int = 3, dim: int = 8, labelled: int = 5, seed: int = 0
) -> QueryContext:
    """Return a seeded pool of `n` candidates: class probabilities, unit embeddings, and the
    unit embeddings of `labelled` already-labelled rows (None when 0)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    vectors = rng.normal(size=(n + labelled, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    done = vectors[n:] if labelled else None
    return QueryContext(probs, np.random.default_rng(seed), vectors[:n], done)


def check_strategy(strategy: Strategy | str, *, n: int = 60, seed: int = 0) -> None:
    """Check a query strategy on seeded pools of `n` candidates (see `query_context`).

    For k of 1, n/3 and n it returns k distinct integer indices of candidates (0..n-1:
    never a labelled row, which is not in the pool), leaves the context's arrays alone,
    works before any row is labelled, and picks the same rows for the same seed.
    Returns None; raises AssertionError naming the broken clause.
    """
    name = strategy if isinstance(strategy, str) else getattr(strategy, "__name__", "strategy")
    fn = STRATEGIES.get(strategy) if isinstance(strategy, str) else strategy
    c = Contract("query strategy", name)
    for k in (1, max(1, n // 3), n):
        ctx = query_context(n, seed=seed)
        given = [a for a in (ctx.probs, ctx.embeddings, ctx.labelled) if a is not None]
        copies = [a.copy() for a in given]
        _check_picks(c, fn(ctx, k), k, n)
        c.require(
            all(np.array_equal(a, b) for a, b in zip(given, copies, strict=True)),
            "leaves the context's arrays alone",
        )
    k = max(1, n // 3)
    try:
        picks = fn(query_context(n, labelled=0, seed=seed), k)
    except Exception as exc:
        raise c.fail(
            "works before any row is labelled (ctx.labelled is None)",
            f"{type(exc).__name__}: {exc}",
        ) from exc
    _check_picks(c, picks, k, n)
    first = np.asarray(fn(query_context(n, seed=seed), k)).tolist()
    second = np.asarray(fn(query_context(n, seed=seed), k)).tolist()
    c.require(
        first == second,
        "picks the same rows for the same seed (randomness only from ctx.rng)",
        f"{first} then {second}",
    )


def _check_picks(c: Contract, picks: object, k: int, n: int) -> None:
    array = np.asarray(picks)
    c.require(
        array.ndim == 1 and len(array) == k, "returns k indices", f"asked {k}, got {array.shape}"
    )
    c.require(
        np.issubdtype(array.dtype, np.integer), "indices are integers", f"dtype {array.dtype}"
    )
    c.require(len(set(array.tolist())) == k, "indices are distinct", f"got {array.tolist()}")
    c.require(
        array.min() >= 0 and array.max() < n,
        "indices point into the pool of candidates, never past it",
        f"{n} candidates, got {sorted(array.tolist())}",
    )
