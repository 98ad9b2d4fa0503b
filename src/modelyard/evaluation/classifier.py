"""What evaluation needs of a classifier: label names and class probabilities of texts."""

from __future__ import annotations

import inspect
from typing import Protocol

import numpy as np

from modelyard.errors import DataError


class Classifier(Protocol):
    """What evaluation needs of a classifier; `modelyard.backends.Backend` is one.

    A classifier that reads text pairs takes them as `predict_proba(texts, pairs)`.
    """

    @property
    def labels(self) -> list[str]: ...

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return (probabilities of shape (len(texts), len(labels)), per-text truncation flags)."""
        ...


def predict_labelled(
    classifier: Classifier, texts: list[str], pairs: list[str] | None
) -> tuple[np.ndarray, list[bool]]:
    """Return the classifier's probabilities and truncation flags for `texts` (and `pairs`).

    Raises DataError when there are pairs and the classifier reads single texts only.
    """
    if pairs is None:
        return classifier.predict_proba(texts)
    if "pairs" not in inspect.signature(classifier.predict_proba).parameters:
        raise DataError(
            f"this {getattr(classifier, 'name', 'classifier')} artifact reads single texts; the "
            "data has a second text column (data.text_pair_column): evaluate the PyTorch run"
        )
    probs, cut = classifier.predict_proba(texts, pairs=pairs)  # type: ignore[call-arg]
    return probs, cut
