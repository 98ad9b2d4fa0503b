"""Models the playground and the explanation page call, loaded once and kept for a while.

Loading verifies every hash and builds the model (a second or more for a real backbone), so
the last few models used stay in memory; calls into one model run one at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from modelyard import api
from modelyard.registry.manifest import read_manifest
from modelyard.registry.run import LoadedRun, load_run, loads_as_torch_run


class ModelCache:
    """The `size` most recently used models, by folder, each with its own lock."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._models: OrderedDict[Path, tuple[LoadedRun | Path, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, path: Path) -> tuple[LoadedRun | Path, threading.Lock]:
        with self._lock:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path]
        kind = read_manifest(path).get("kind", "classifier")
        # artifacts that are not PyTorch runs (ONNX, ...) are predicted through their backend
        model: LoadedRun | Path = load_run(path) if loads_as_torch_run(kind) else path
        entry = (model, threading.Lock())
        with self._lock:
            self._models[path] = entry
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return entry

    def predict(self, path: Path, texts: list[str]) -> list[dict[str, Any]]:
        """Return `modelyard.api.predict` of the model at `path` on `texts`.

        Raises ArtifactError for a folder that is not a finished, verified artifact.
        """
        model, lock = self._get(path)
        with lock:
            return api.predict(model, texts)

    def explain(self, path: Path, text: str, method: str | None) -> Any:
        """Return the `modelyard.api.explain` Explanation of `text` by the model at `path`.

        Raises ArtifactError, UnknownPluginError, ExplainError or DataError as `explain` does.
        """
        model, lock = self._get(path)
        with lock:
            return api.explain(model, text, method=method)[0]

    def is_torch(self, path: Path) -> bool:
        """Return True when the model at `path` loads as a PyTorch run (gradients available)."""
        return isinstance(self._get(path)[0], LoadedRun)
