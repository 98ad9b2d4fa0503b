"""What is explained: any backend's class probabilities, plus a PyTorch model when there is one.

Forward-only methods (occlusion, Shapley) need only `Backend.predict_proba`, so they work
for ONNX and any other artifact kind with a backend. Gradient methods need the PyTorch
model and tokenizer, which a PyTorch backend exposes as `backend.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelyard.backends import Backend, TorchBackend, load_backend
from modelyard.recipe import Recipe
from modelyard.registry.run import LoadedRun


class RunBackend(TorchBackend):
    """A Backend over a run that is already loaded (no second load from disk)."""

    def __init__(self, run: LoadedRun, batch_size: int = 32) -> None:
        self._serve(run, batch_size)


@dataclass
class Subject:
    """A classifier to explain: its backend, and its PyTorch run if gradients are available."""

    backend: Backend
    run: LoadedRun | None

    @property
    def labels(self) -> list[str]:
        """Return the class names in output order."""
        return list(self.backend.labels)

    @property
    def kind(self) -> str:
        """Return the backend's name (torch, onnx, ...), shown in error messages."""
        return str(getattr(self.backend, "name", type(self.backend).__name__))

    @property
    def recipe(self) -> Recipe | None:
        """Return the recipe of the PyTorch run, or None when there is none (another backend)."""
        return self.run.recipe if self.run is not None else None

    def proba(self, texts: list[str]) -> np.ndarray:
        """Return class probabilities of shape (len(texts), n_classes)."""
        probs, _ = self.backend.predict_proba(list(texts))
        return np.asarray(probs, dtype=np.float64)


def _torch_run(backend: object) -> LoadedRun | None:
    run = getattr(backend, "run", None)
    # any PyTorch backend (full, LoRA, embedding classifier) qualifies by exposing its
    # module, with an input-embedding layer to attribute to, and its tokenizer
    model = getattr(run, "model", None)
    if not isinstance(run, LoadedRun) or not isinstance(model, torch.nn.Module):
        return None
    if not callable(getattr(model, "get_input_embeddings", None)):
        return None
    # int8-quantized layers have no gradients: such a model is explained by its forward pass
    if any(".quantized" in type(m).__module__ for m in model.modules()):
        return None
    return run


def as_subject(source: Subject | LoadedRun | Backend | str | Path) -> Subject:
    """Return a Subject for a run directory, artifact path, loaded run or backend.

    Raises ArtifactError (from the loaders) when the artifact fails verification or its
    kind has no inference backend.
    """
    if isinstance(source, Subject):
        return source
    if isinstance(source, LoadedRun):
        return Subject(RunBackend(source), source)
    backend = load_backend(source) if isinstance(source, str | Path) else source
    return Subject(backend, _torch_run(backend))
