"""Query strategies (one contract over every registered strategy) and the AL simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.curation.active import STRATEGIES, QueryContext, select
from modelyard.curation.embed import normalise
from modelyard.curation.simulate import (
    label_schedule,
    labels_to_match,
    plot_curves,
    simulate_active_learning,
)
from modelyard.errors import DataError, UnknownPluginError


def _context(n: int = 200, classes: int = 3, seed: int = 0) -> QueryContext:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    vectors = normalise(rng.normal(size=(n, 8)).astype(np.float32))
    labelled = normalise(rng.normal(size=(5, 8)).astype(np.float32))
    return QueryContext(probs, np.random.default_rng(seed), vectors, labelled)


@pytest.mark.parametrize("strategy", STRATEGIES.names())
@pytest.mark.parametrize("k", [1, 17, 200])
def test_every_strategy_returns_k_distinct_candidates(strategy: str, k: int) -> None:
    picks = select(strategy, _context(), k)
    assert len(picks) == k and len(set(picks.tolist())) == k
    assert picks.min() >= 0 and picks.max() < 200


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_every_strategy_is_seeded(strategy: str) -> None:
    assert (
        select(strategy, _context(seed=3), 20).tolist()
        == select(strategy, _context(seed=3), 20).tolist()
    )


def test_uncertainty_strategies_pick_the_most_uncertain_rows() -> None:
    probs = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.495, 0.005], [0.7, 0.2, 0.1]])
    ctx = QueryContext(probs, np.random.default_rng(0))
    assert select("margin", ctx, 2).tolist() == [2, 1]
    assert select("least-confidence", ctx, 1).tolist() == [1]
    assert select("entropy", ctx, 1).tolist() == [1]


def test_kcenter_covers_clusters_far_from_the_labelled_rows() -> None:
    centres = np.eye(4, dtype=np.float32)
    rng = np.random.default_rng(0)
    vectors = normalise(np.repeat(centres, 25, axis=0) + rng.normal(scale=0.01, size=(100, 4)))
    ctx = QueryContext(np.full((100, 2), 0.5), rng, vectors, centres[:1])
    picks = select("kcenter", ctx, 3)
    assert sorted({int(p) // 25 for p in picks}) == [1, 2, 3]


def test_badge_spreads_over_uncertain_clusters() -> None:
    rng = np.random.default_rng(1)
    vectors = normalise(np.repeat(np.eye(3), 20, axis=0) + rng.normal(scale=0.01, size=(60, 3)))
    probs = np.tile([0.5, 0.5], (60, 1))
    picks = select("badge", QueryContext(probs, rng, vectors), 3)
    assert sorted({int(p) // 20 for p in picks}) == [0, 1, 2]


def test_density_prefers_typical_uncertain_rows_to_outliers() -> None:
    rng = np.random.default_rng(2)
    typical = normalise(np.array([1.0, 0.0, 0.0]) + rng.normal(scale=0.05, size=(30, 3)))
    outliers = normalise(np.array([[-1.0, 0.2, 0.0], [0.0, -1.0, 0.3]]))
    vectors = np.vstack([typical, outliers]).astype(np.float32)
    probs = np.tile([0.9, 0.1], (32, 1))
    probs[[3, 30, 31]] = [0.52, 0.48]  # equally uncertain: one typical row, two outliers
    picks = select("density", QueryContext(probs, rng, vectors), 1)
    assert picks.tolist() == [3]
    assert select("margin", QueryContext(probs, rng, vectors), 3).tolist() == [3, 30, 31]


def test_margin_diverse_spreads_a_batch_over_uncertain_clusters() -> None:
    rng = np.random.default_rng(3)
    vectors = normalise(np.repeat(np.eye(3), 20, axis=0) + rng.normal(scale=0.01, size=(60, 3)))
    probs = np.tile([0.95, 0.05], (60, 1))
    probs[:12] = [0.5, 0.5]  # the most uncertain rows all sit in cluster 0
    probs[20:24] = probs[40:44] = [0.6, 0.4]
    picks = select(
        "margin-diverse",
        QueryContext(probs, rng, vectors),
        3,
    )
    assert sorted({int(p) // 20 for p in picks}) == [0, 1, 2]
    assert select("margin", QueryContext(probs, rng, vectors), 3).max() < 20


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(DataError, match="k=5 rows from 3"):
        select("margin", QueryContext(np.full((3, 2), 0.5), np.random.default_rng(0)), 5)
    with pytest.raises(
        UnknownPluginError, match="unknown query strategy 'smart'; available: badge"
    ):
        select("smart", _context(), 1)
    with pytest.raises(DataError, match="needs embeddings"):
        select("kcenter", QueryContext(np.full((3, 2), 0.5), np.random.default_rng(0)), 1)


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = np.eye(3)[y] * 1.5 + rng.normal(scale=0.7, size=(n, 3))
    return normalise(x.astype(np.float32)), y


def test_schedule() -> None:
    assert label_schedule(50, 50, 200) == [50, 100, 150, 200]
    assert label_schedule(10, 30, 60) == [10, 40, 60]
    with pytest.raises(DataError, match="need 0 < start <= stop"):
        label_schedule(100, 50, 60)


def test_simulation_grows_labels_and_learns(tmp_path: Path) -> None:
    pool, test = _blobs(400, 0), _blobs(200, 1)
    schedule = label_schedule(10, 30, 100)
    curves = simulate_active_learning(pool, test, ["random", "margin", "kcenter"], schedule, [0, 1])
    assert len(curves) == 3 * 2 * len(schedule)
    first = curves[curves["labels"] == 10].groupby("seed")["accuracy"].nunique()
    assert (first == 1).all()  # every strategy starts from the same random labels per seed
    final = curves[curves["labels"] == 100]["accuracy"]
    assert final.min() > 0.7
    plot = plot_curves(curves, tmp_path / "c.png", "blobs")
    assert plot.stat().st_size > 1000
    with pytest.raises(DataError, match="pool has 400 rows"):
        simulate_active_learning(pool, test, ["random"], [10, 500], [0])


def test_labels_to_match_random() -> None:
    curves = pd.DataFrame(
        {
            "strategy": ["random"] * 3 + ["margin"] * 3,
            "seed": 0,
            "labels": [50, 100, 150] * 2,
            "accuracy": [0.5, 0.6, 0.7, 0.55, 0.72, 0.75],
        }
    )
    assert labels_to_match(curves) == {"margin": 100, "random": 150}
