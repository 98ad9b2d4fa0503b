"""Paired bootstrap over test rows for the difference of two classifiers' accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np


def paired_gain(
    with_runs: list[list[int]], without_runs: list[list[int]], seed: int, n: int = 2000
) -> dict[str, Any]:
    """Return the mean accuracy of each side, their difference and a 95% paired bootstrap interval.

    Each list holds one run (seed) of per-row correctness (0/1) on the same test rows; rows
    are resampled together for both sides, and the seeds are averaged per row.
    """
    a = np.asarray(with_runs, dtype=float).mean(axis=0)
    b = np.asarray(without_runs, dtype=float).mean(axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    return {
        "accuracy_with": float(a.mean()),
        "accuracy_without": float(b.mean()),
        "mlm_downstream_gain": float(a.mean() - b.mean()),
        "mlm_downstream_gain_ci95": [
            float(np.percentile(diffs, 2.5)),
            float(np.percentile(diffs, 97.5)),
        ],
        "per_seed_with": [float(np.mean(r)) for r in with_runs],
        "per_seed_without": [float(np.mean(r)) for r in without_runs],
    }
