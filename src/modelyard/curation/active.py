"""Active learning: which unlabelled rows to label next.

A query strategy gets the model's class probabilities for every candidate (and, for the
diversity-aware ones, unit-length embeddings) and returns the indices of the k rows to
label next. Strategies live in the STRATEGIES registry; add one with
``@STRATEGIES.register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modelyard.errors import DataError
from modelyard.plugins import Registry


@dataclass
class QueryContext:
    """What a strategy may look at: candidates' probabilities (n, classes), their embeddings
    (n, d) and the labelled rows' embeddings (m, d) when the strategy needs them, and a
    seeded random generator."""

    probs: np.ndarray
    rng: np.random.Generator
    embeddings: np.ndarray | None = None
    labelled: np.ndarray | None = None

    def need_embeddings(self, strategy: str) -> np.ndarray:
        """Return the candidates' embeddings; raise DataError when they were not given."""
        if self.embeddings is None:
            raise DataError(f"strategy '{strategy}' needs embeddings of the candidate rows")
        return self.embeddings


Strategy = Callable[[QueryContext, int], np.ndarray]
STRATEGIES: Registry[Strategy] = Registry("query strategy")
NEEDS_EMBEDDINGS = frozenset({"kcenter", "badge", "density", "margin-diverse"})


def _lowest(score: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(score, kind="stable")[:k]


@STRATEGIES.register("random")
def random_query(ctx: QueryContext, k: int) -> np.ndarray:
    """Return k candidates drawn uniformly at random: the baseline every strategy must beat."""
    return ctx.rng.choice(len(ctx.probs), size=k, replace=False)


@STRATEGIES.register("least-confidence")
def least_confidence(ctx: QueryContext, k: int) -> np.ndarray:
    """Return the k candidates whose most likely class is least likely."""
    return _lowest(ctx.probs.max(axis=1), k)


@STRATEGIES.register("margin")
def margin(ctx: QueryContext, k: int) -> np.ndarray:
    """Return the k candidates with the smallest gap between the two most likely classes."""
    top = np.sort(ctx.probs, axis=1)
    return _lowest(top[:, -1] - top[:, -2], k)


@STRATEGIES.register("entropy")
def entropy(ctx: QueryContext, k: int) -> np.ndarray:
    """Return the k candidates whose predicted distribution has the highest entropy."""
    p = np.clip(ctx.probs, 1e-12, 1.0)
    return _lowest((p * np.log(p)).sum(axis=1), k)


@STRATEGIES.register("kcenter")
def kcenter_greedy(ctx: QueryContext, k: int) -> np.ndarray:
    """Return k candidates by k-center greedy: each pick is the candidate farthest (cosine)
    from the labelled rows and the picks so far, so the batch covers the pool."""
    vectors = ctx.need_embeddings("kcenter")
    picks: list[int] = []
    if ctx.labelled is not None and len(ctx.labelled):
        distance = 1.0 - (vectors @ ctx.labelled.T).max(axis=1)
    else:  # no centre yet: start at a random candidate
        picks.append(int(ctx.rng.integers(len(vectors))))
        distance = 1.0 - vectors @ vectors[picks[0]]
        distance[picks] = -np.inf
    while len(picks) < k:
        best = int(np.argmax(distance))
        picks.append(best)
        distance = np.minimum(distance, 1.0 - vectors @ vectors[best])
        distance[picks] = -np.inf
    return np.asarray(picks)


@STRATEGIES.register("badge")
def badge(ctx: QueryContext, k: int) -> np.ndarray:
    """Return k candidates by BADGE: k-means++ seeding on the gradient embeddings of a linear
    head, (p - onehot(argmax p)) x embedding, which mixes uncertainty (norm) and diversity."""
    vectors = ctx.need_embeddings("badge")
    residual = ctx.probs.copy()
    residual[np.arange(len(residual)), residual.argmax(axis=1)] -= 1.0
    # <r_i x x_i, r_j x x_j> = <r_i, r_j> <x_i, x_j>: distances without the n x (classes * d) matrix
    squared = (residual**2).sum(axis=1) * (vectors**2).sum(axis=1)

    def distance_to(j: int) -> np.ndarray:
        inner = (residual @ residual[j]) * (vectors @ vectors[j])
        return np.clip(squared + squared[j] - 2 * inner, 0.0, None)

    picks = [int(np.argmax(squared))]
    nearest = distance_to(picks[0])
    for _ in range(k - 1):
        weights = nearest.copy()
        weights[picks] = 0.0
        total = weights.sum()
        if total > 0:
            pick = int(ctx.rng.choice(len(weights), p=weights / total))
        else:  # every candidate coincides with a pick: fill up uniformly
            pick = int(ctx.rng.choice(np.setdiff1d(np.arange(len(weights)), picks)))
        picks.append(pick)
        nearest = np.minimum(nearest, distance_to(pick))
    return np.asarray(picks)


def _margins(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs, axis=1)
    return top[:, -1] - top[:, -2]


@STRATEGIES.register("density")
def information_density(ctx: QueryContext, k: int) -> np.ndarray:
    """Return the k candidates with the highest uncertainty (1 - margin) times their mean
    cosine similarity to the pool (information density): uncertain rows that are typical,
    not outliers, which uncertainty alone favours on noisy data."""
    vectors = ctx.need_embeddings("density")
    centroid = vectors.mean(axis=0)
    # (1 + cos) / 2 keeps the weight positive; mean cosine to the pool = <x, centroid>
    typical = (1.0 + vectors @ centroid) / 2.0
    return _lowest(-(1.0 - _margins(ctx.probs)) * typical, k)


@STRATEGIES.register("margin-diverse")
def margin_diverse(ctx: QueryContext, k: int, prefilter: int = 10) -> np.ndarray:
    """Return k candidates by diverse mini-batch selection: the `prefilter` x k smallest
    margins, clustered into k groups by k-means weighted by uncertainty, and from each
    group the candidate nearest its centre, so a batch is uncertain but not redundant."""
    from sklearn.cluster import KMeans

    vectors = ctx.need_embeddings("margin-diverse")
    margins = _margins(ctx.probs)
    pool = _lowest(margins, min(len(margins), prefilter * k))
    if len(pool) == k:
        return pool
    seed = int(ctx.rng.integers(2**31))
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed)
    groups = kmeans.fit_predict(vectors[pool], sample_weight=1.0 - margins[pool] + 1e-6)
    distance = ((vectors[pool] - kmeans.cluster_centers_[groups]) ** 2).sum(axis=1)
    picks = [
        int(pool[at[np.argmin(distance[at])]])
        for at in (np.nonzero(groups == g)[0] for g in range(k))
        if len(at)
    ]
    if len(picks) < k:  # empty clusters (duplicate points): fill with the next smallest margins
        left = [int(i) for i in pool if int(i) not in set(picks)]
        picks += left[: k - len(picks)]
    return np.asarray(picks)


def select(strategy: str, ctx: QueryContext, k: int) -> np.ndarray:
    """Return the indices of the k candidates `strategy` picks, most wanted first.

    Raises UnknownPluginError for an unknown strategy and DataError when k is not between
    1 and the number of candidates.
    """
    chosen = STRATEGIES.get(strategy)
    n = len(ctx.probs)
    if not 1 <= k <= n:
        raise DataError(
            f"cannot pick k={k} rows from {n} unlabelled candidate(s); "
            f"choose k between 1 and {n}" + (" or add rows to the pool" if n else "")
        )
    picks = np.asarray(chosen(ctx, k), dtype=np.int64)
    if len(set(picks.tolist())) != k:  # a plug-in bug must not reach the annotators
        raise RuntimeError(f"strategy '{strategy}' returned {len(picks)} rows, not {k} distinct")
    return picks
