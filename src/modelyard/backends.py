"""Inference backends: one protocol, chosen by the artifact's manifest `kind`.

Serving, compression reports and explanations call `load_backend(path)` and never care
whether the weights are PyTorch, ONNX or something added later: the manifest's kind picks
the backend from the table in `modelyard.registry.kinds`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from modelyard.errors import ArtifactError
from modelyard.registry.kinds import CLASSIFIER, artifact_kind, resolve
from modelyard.registry.manifest import read_manifest, verify_manifest
from modelyard.registry.signing import enforce_trust, trusted_keys_from_env


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

        self.run = load_run(path, device=device)
        self.path = Path(path)
        self.labels = self.run.labels
        self.max_length = self.run.max_length
        self.batch_size = batch_size

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities and truncation flags for `texts`."""
        from modelyard.inference import predict_proba

        preds = predict_proba(self.run, texts, batch_size=self.batch_size)
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
    name = read_manifest(root).get("kind", CLASSIFIER)
    try:
        kind = artifact_kind(name)
    except ArtifactError as exc:
        raise ArtifactError(f"{root}: {exc}") from None
    factory: Callable[[Path], Backend] = resolve(kind.backend)
    return factory(root)
