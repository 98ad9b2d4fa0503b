"""Membership-inference attack statistics: AUC and TPR at a low FPR, with bootstrap intervals.

Scores are "higher means more likely a training member". Intervals come from a stratified
bootstrap: members and non-members are resampled separately, so each resample keeps both sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

_CHUNK = 64


def _check(members: np.ndarray, non_members: np.ndarray) -> None:
    if members.ndim != 1 or non_members.ndim != 1 or min(len(members), len(non_members)) < 2:
        raise ValueError("attack scores need 1-D arrays of at least 2 members and 2 non-members")
    if not (np.isfinite(members).all() and np.isfinite(non_members).all()):
        raise ValueError("attack scores must be finite")


def auc_rows(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """Return the ROC AUC of each row pair (Mann–Whitney U with mid-ranks for ties)."""
    n1, n0 = members.shape[-1], non_members.shape[-1]
    ranks = rankdata(np.concatenate([members, non_members], axis=-1), axis=-1)
    u = ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2
    return u / (n1 * n0)


def tpr_at_fpr_rows(members: np.ndarray, non_members: np.ndarray, fpr: float) -> np.ndarray:
    """Return, per row pair, the highest TPR of a threshold whose FPR is at most `fpr`.

    The threshold is the (k+1)-th highest non-member score with k = floor(fpr · n0), and a
    score must be strictly above it, so at most k non-members pass.
    """
    k = int(np.floor(fpr * non_members.shape[-1]))
    threshold = -np.partition(-non_members, k, axis=-1)[..., k]
    return (members > threshold[..., None]).mean(axis=-1)


def attack_summary(
    members: np.ndarray,
    non_members: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    fpr: float = 0.01,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Return AUC and TPR at `fpr`, each with a percentile bootstrap interval.

    Raises ValueError for fewer than two scores on either side or non-finite scores.
    """
    _check(members, non_members)
    rng = np.random.default_rng(seed)
    aucs, tprs = [], []
    for start in range(0, resamples, _CHUNK):
        b = min(_CHUNK, resamples - start)
        m = members[rng.integers(0, len(members), (b, len(members)))]
        n = non_members[rng.integers(0, len(non_members), (b, len(non_members)))]
        aucs.append(auc_rows(m, n))
        tprs.append(tpr_at_fpr_rows(m, n, fpr))
    tail = 100 * (1 - confidence) / 2
    interval = (tail, 100 - tail)
    return {
        "auc": round(float(auc_rows(members, non_members)), 4),
        "auc_ci": [round(float(v), 4) for v in np.percentile(np.concatenate(aucs), interval)],
        "tpr_at_fpr": round(float(tpr_at_fpr_rows(members, non_members, fpr)), 4),
        "tpr_at_fpr_ci": [
            round(float(v), 4) for v in np.percentile(np.concatenate(tprs), interval)
        ],
    }
