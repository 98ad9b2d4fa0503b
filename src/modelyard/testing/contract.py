"""The one way a check reports a broken promise: an AssertionError naming the plug-in and clause."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Contract:
    """The contract of one plug-in: `require` fails with the extension point, name and clause."""

    def __init__(self, point: str, name: str) -> None:
        self.point = point
        self.name = name

    def fail(self, clause: str, detail: str = "") -> AssertionError:
        """Return the AssertionError saying that this plug-in breaks `clause` (with `detail`)."""
        message = f"{self.point} '{self.name}' breaks the contract clause '{clause}'"
        return AssertionError(f"{message}: {detail}" if detail else message)

    def require(self, ok: object, clause: str, detail: str = "") -> None:
        """Raise AssertionError naming `clause` unless `ok` is true."""
        if not ok:
            raise self.fail(clause, detail)

    def probabilities(
        self, result: Any, n: int, labels: Sequence[str], sum_atol: float = 1e-3
    ) -> tuple[np.ndarray, list[bool]]:
        """Return (probs, flags) from a `predict_proba` result after checking the Backend promise.

        Raises AssertionError unless it is a pair of an (n, len(labels)) array of finite
        probabilities in [0, 1] whose rows sum to 1 (within `sum_atol`) and n boolean flags.
        """
        self.require(
            isinstance(result, tuple) and len(result) == 2,
            "predict_proba returns (probabilities, truncation flags)",
            f"got {type(result).__name__}",
        )
        probs, flags = np.asarray(result[0]), list(result[1])
        shape = (n, len(labels))
        self.require(
            probs.shape == shape,
            "probabilities have shape (n texts, n labels)",
            f"expected {shape}, got {probs.shape}",
        )
        self.require(np.isfinite(probs).all(), "probabilities are finite", f"got {probs}")
        self.require(
            ((probs >= 0) & (probs <= 1 + 1e-6)).all(),
            "probabilities lie in [0, 1]",
            f"min {probs.min() if probs.size else 0}, max {probs.max() if probs.size else 0}",
        )
        sums = probs.sum(axis=1)
        self.require(
            np.allclose(sums, 1, atol=sum_atol),
            "each row of probabilities sums to 1",
            f"row sums {np.round(sums, 6).tolist()}",
        )
        self.require(
            len(flags) == n, "one truncation flag per text", f"{len(flags)} flags for {n} texts"
        )
        self.require(
            all(isinstance(f, bool | np.bool_) for f in flags),
            "truncation flags are booleans",
            f"got {[type(f).__name__ for f in flags]}",
        )
        return probs, [bool(f) for f in flags]
