"""Runs of the tasks beside classification on a server: a token classifier answers
`/v1/predict` with entity spans (character offsets into each text), a multi-label run with
the labels at or above their thresholds, a regression run with a number."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from modelyard.registry.store import ModelRef, ResolvedModel
from modelyard.seqtasks import head_kind, load_head_run
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.settings import ServeSettings
from modelyard.tagging import is_tagger, load_tagger
from modelyard.tagging.use import predict_loaded


def is_tagging_artifact(path: Path) -> bool:
    """Return True when the artifact at `path` is a token-classification, multi-label or
    regression run (served here rather than by a classifier predictor)."""
    return is_tagger(path) or head_kind(path) is not None


@dataclass
class ServedTagger:
    """A run of another task being served: its reference, version, task and loaded run.

    Requests run one at a time in a worker thread (a forward pass already uses every core).
    """

    ref: ModelRef
    resolved: ResolvedModel
    run: Any  # a LoadedTagger, or a LoadedHead (multi-label, regression)
    task: str
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

    @property
    def labels(self) -> list[str]:
        """Return the tags, labels, or ["value"] (regression) of the model."""
        return list(self.run.tags if self.task == "token-classification" else self.run.labels)

    def predict_now(self, texts: list[str]) -> list[dict[str, Any]]:
        """Return each text's answer in the task's shape (blocking)."""
        with self.lock:
            if self.task == "token-classification":
                return predict_loaded(self.run, texts, self.batch_size)
            answers: list[dict[str, Any]] = self.run.predict(texts, self.batch_size)
            return answers

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Return each text's answer without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.predict_now, texts)


def load_served_tagger(
    ref: ModelRef, resolved: ResolvedModel, settings: ServeSettings, metrics: ServeMetrics
) -> ServedTagger:
    """Load the run `resolved`, warm it, and report its version.

    Raises ArtifactError when the run fails verification or cannot be loaded.
    """
    task = head_kind(resolved.path)
    if task is None:
        run: Any = load_tagger(resolved.path)
        task = "token-classification"
    else:
        run = load_head_run(resolved.path)
    served = ServedTagger(ref, resolved, run, task, settings.max_batch_size)
    metrics.version.labels(ref.name).set(resolved.version)
    served.predict_now(["warm up"])  # the first forward pass allocates; pay it before traffic
    return served
