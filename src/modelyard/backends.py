"""Inference backends: one protocol, chosen by the artifact's manifest `kind`.

Serving, compression reports, explanations and evaluation call `load_backend(path)` and never
care whether the weights are PyTorch, ONNX or something added later: the manifest's kind picks
the backend from the table in `modelyard.registry.kinds`. `evaluate_file` evaluates any
backend on a labelled file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelyard.errors import ArtifactError
from modelyard.registry.kinds import CLASSIFIER, artifact_kind, resolve, task_refusal
from modelyard.registry.manifest import read_manifest, verify_manifest
from modelyard.registry.signing import enforce_trust, trusted_keys_from_env

if TYPE_CHECKING:
    from modelyard.recipe import Recipe
    from modelyard.registry.run import LoadedRun


class Backend(Protocol):
    """A loaded classifier that maps texts to class probabilities."""

    name: str
    labels: list[str]
    max_length: int
    path: Path

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return (probabilities of shape (len(texts), len(labels)), per-text truncation flags)."""
        ...


class TorchBackend:
    """A PyTorch run directory (`kind: classifier`) served in eval mode on the CPU or a GPU."""

    name = "torch"

    def __init__(self, path: Path, device: str = "cpu", batch_size: int = 32) -> None:
        from modelyard.registry.run import load_run

        self._serve(load_run(path, device=device), batch_size)

    @classmethod
    def from_run(cls, run: LoadedRun, batch_size: int = 32) -> TorchBackend:
        """Return a backend over a run that is already loaded (no second load from disk)."""
        backend = cls.__new__(cls)
        backend._serve(run, batch_size)
        return backend

    def _serve(self, run: LoadedRun, batch_size: int) -> None:
        self.run = run
        self.path = Path(run.path)
        self.labels = run.labels
        self.max_length = run.max_length
        self.batch_size = batch_size

    def predict_proba(
        self, texts: list[str], pairs: list[str] | None = None
    ) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities and truncation flags for `texts` (with second texts
        `pairs` for a model trained on text pairs)."""
        from modelyard.inference import predict_proba

        preds = predict_proba(self.run, texts, pairs, batch_size=self.batch_size)
        return preds.probs, preds.truncated


def load_backend(
    path: str | Path,
    *,
    trusted_keys: list[str | Path] | None = None,
    require_signature: bool = False,
) -> Backend:
    """Return the backend for the artifact at `path`, chosen by its manifest kind; backends verify hashes.

    With `trusted_keys`, `require_signature` or MODELYARD_TRUSTED_KEYS set, the artifact must
    carry a valid signature by a trusted key (see `modelyard.registry.signing`).
    Raises ArtifactError when the artifact fails verification or its kind has no backend,
    SignatureError when a required signature is missing or invalid.
    """
    root = Path(path)
    if trusted_keys or require_signature or trusted_keys_from_env():
        enforce_trust(root, verify_manifest(root), trusted_keys, require_signature)
    # each backend verifies every hash as it loads; here only the kind is read
    manifest = read_manifest(root)
    name = manifest.get("kind", CLASSIFIER)
    try:
        kind = artifact_kind(name)
    except ArtifactError as exc:
        raise ArtifactError(f"{root}: {task_refusal(manifest) or exc}") from None
    factory: Callable[[Path], Backend] = resolve(kind.backend)
    return factory(root)


def evaluate_file(
    classifier: Backend,
    recipe: Recipe,
    data: Path,
    text_column: str | None = None,
    label_column: str | None = None,
    output: Path | None = None,
    robustness: bool = False,
) -> dict[str, Any]:
    """Evaluate `classifier` (an inference backend) on the labelled file `data`, read with the
    columns of the run's `recipe` unless overridden, as the recipe's `evaluate` section says.

    Writes metrics.json, confusion.png and report.md (robustness.md with `robustness`) into
    `output` (default `<artifact>/evaluations/<file stem>/`) and returns the metrics with
    `rows_dropped_empty_text` and `report_dir`. Raises DataError for a bad file, a label the
    model does not know, or text pairs the classifier cannot read.
    """
    # pandas and matplotlib load here, not when a server or the command line imports backends
    from modelyard.data.labelled import labelled_split_like
    from modelyard.evaluation import evaluate_classifier, write_evaluation

    path = Path(classifier.path)
    split, dropped = labelled_split_like(
        data, recipe.data, list(classifier.labels), text_column, label_column
    )
    metrics = evaluate_classifier(classifier, split, recipe.evaluate, robustness)
    metrics["rows_dropped_empty_text"] = dropped
    out = output or path / "evaluations" / data.stem
    kind = "" if classifier.name == "torch" else f" ({classifier.name})"
    title = f"{path.name}{kind} on {data.name}"
    write_evaluation(metrics, list(classifier.labels), out, title)
    metrics["report_dir"] = str(out)
    return metrics
