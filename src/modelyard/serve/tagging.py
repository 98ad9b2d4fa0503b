"""Token classifiers on a server: a token-classification run answering `/v1/predict` with
entity spans (character offsets into each text) instead of class probabilities."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from modelyard.registry.store import ModelRef, ResolvedModel
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.settings import ServeSettings
from modelyard.tagging import LoadedTagger, is_tagger, load_tagger
from modelyard.tagging.use import predict_loaded


def is_tagging_artifact(path: Path) -> bool:
    """Return True when the artifact at `path` is a token-classification run."""
    return is_tagger(path)


@dataclass
class ServedTagger:
    """A token classifier being served: its reference, version and loaded run.

    Requests run one at a time in a worker thread (a forward pass already uses every core).
    """

    ref: ModelRef
    resolved: ResolvedModel
    tagger: LoadedTagger
    batch_size: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """Return the model name."""
        return self.ref.name

    @property
    def version(self) -> str:
        """Return the version being served."""
        return str(self.resolved.version)

    def predict_now(self, texts: list[str]) -> list[dict[str, Any]]:
        """Return each text's entities, words, tags and truncation flag (blocking)."""
        with self.lock:
            return predict_loaded(self.tagger, texts, self.batch_size)

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Return each text's entities without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.predict_now, texts)


def load_served_tagger(
    ref: ModelRef, resolved: ResolvedModel, settings: ServeSettings, metrics: ServeMetrics
) -> ServedTagger:
    """Load the token-classification run `resolved`, warm it, and report its version.

    Raises ArtifactError when the run fails verification or cannot be loaded.
    """
    served = ServedTagger(ref, resolved, load_tagger(resolved.path), settings.max_batch_size)
    metrics.version.labels(ref.name).set(resolved.version)
    served.predict_now(["warm up"])  # the first forward pass allocates; pay it before traffic
    return served
