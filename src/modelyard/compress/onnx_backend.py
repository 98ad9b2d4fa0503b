"""ONNX Runtime inference: a classifier over an ONNX graph, and the `onnx-classifier` backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ArtifactError, ModelyardError
from modelyard.models.encoding import CALL_TOKENS, collate, encode_texts, length_groups
from modelyard.models.onnx_runtime import (  # moved there: token classifiers use them too
    ONNX_FILE as ONNX_FILE,
)
from modelyard.models.onnx_runtime import check_external_data as check_external_data
from modelyard.models.onnx_runtime import default_threads as default_threads
from modelyard.models.onnx_runtime import make_session as make_session
from modelyard.registry.calibration import read_temperature
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import read_labels, read_recipe

ONNX_KIND = "onnx-classifier"


class OnnxClassifier:
    """Texts in, class probabilities out, through an ONNX graph with a `logits` output.

    Probabilities are softmax(logits / temperature): the run's calibration temperature.
    """

    name = "onnx"

    def __init__(
        self,
        model: Path | bytes,
        tokenizer: Any,
        labels: list[str],
        max_length: int,
        threads: int | None = None,
        batch_size: int = 32,
        temperature: float = 1.0,
        call_tokens: int = CALL_TOKENS,
    ) -> None:
        self.session = make_session(model, threads)
        self.temperature = temperature
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer, self.labels, self.max_length = tokenizer, labels, max_length
        self.batch_size, self.call_tokens = batch_size, call_tokens
        self.pad_id = tokenizer.pad_token_id or 0

    def predict_logits(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return fp32 logits in the order of `texts` and per-text truncation flags."""
        ids, types, cut = encode_texts(self.tokenizer, texts, None, self.max_length)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out, cut
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        for index in length_groups(lengths, self.batch_size, self.call_tokens):
            batch = collate(ids, types, index, self.pad_id)
            if "token_type_ids" in self.inputs and "token_type_ids" not in batch:
                batch["token_type_ids"] = batch["input_ids"] * 0
            feed = {k: v.numpy() for k, v in batch.items() if k in self.inputs}
            out[index] = self.session.run(["logits"], feed)[0]
        return out, cut

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return (probabilities of shape (len(texts), len(labels)), per-text truncation flags)."""
        logits, cut = self.predict_logits(texts)
        logits = logits / np.float32(self.temperature)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True), cut


class OnnxBackend:
    """An `onnx-classifier` artifact served by ONNX Runtime; its manifest is verified on load."""

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None, batch_size: int = 32) -> None:
        from modelyard.models.build import load_tokenizer

        self.path = Path(path)
        manifest = verify_manifest(self.path)
        if ONNX_FILE not in manifest["files"]:
            raise ArtifactError(f"{self.path}: the manifest lists no {ONNX_FILE}")
        self.labels = read_labels(self.path)
        self.manifest, self.recipe = manifest, read_recipe(self.path)
        self.max_length = self.recipe.model.max_length
        check_external_data(self.path, manifest)
        try:
            self.classifier = OnnxClassifier(
                self.path / ONNX_FILE,
                load_tokenizer(self.path),
                self.labels,
                self.max_length,
                threads,
                batch_size,
                read_temperature(self.path, manifest),
            )
        except Exception as exc:  # onnxruntime's own load errors have no common base class
            if isinstance(exc, ModelyardError):
                raise
            raise ArtifactError(f"cannot load {self.path / ONNX_FILE}: {exc}") from None

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities and truncation flags for `texts`."""
        return self.classifier.predict_proba(texts)
