"""The model a training method starts from, by the recipe's pooling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.methods.embedding import build_embedding_classifier
from modelyard.models import build_classifier


def build_task_model(folder: Path, labels: list[str], pooling: str) -> Any:
    """Return the model a method starts from: the backbone's classifier (cls) or a mean-pooled head."""
    if pooling == "mean":
        return build_embedding_classifier(folder, labels)
    return build_classifier(folder, labels)
