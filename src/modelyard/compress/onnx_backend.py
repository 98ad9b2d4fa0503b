"""ONNX Runtime inference: a classifier over an ONNX graph, and the `onnx-classifier` backend.

PyTorch and ONNX Runtime in one process fight over the cores when their thread pools
overlap, so the session gets an explicit thread count and its workers do not spin after
a call (a spinning pool would steal the cores from the next PyTorch call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import ArtifactError, ModelyardError
from modelyard.models.encoding import collate, encode_texts, eval_batches
from modelyard.plugins import require
from modelyard.registry.calibration import read_temperature
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import read_labels, read_recipe

ONNX_KIND = "onnx-classifier"
ONNX_FILE = "model.onnx"


def default_threads() -> int:
    """Return the intra-op thread count PyTorch uses here (physical cores, or its set value)."""
    import torch

    return torch.get_num_threads()


def make_session(model: Path | bytes, threads: int | None = None) -> Any:
    """Return an ONNX Runtime CPU session with every graph optimisation and `threads` threads.

    Raises MissingExtraError when onnxruntime is not installed.
    """
    ort: Any = require("onnxruntime", extra="compress")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


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
    ) -> None:
        self.session = make_session(model, threads)
        self.temperature = temperature
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer, self.labels, self.max_length = tokenizer, labels, max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id or 0

    def predict_logits(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return fp32 logits in the order of `texts` and per-text truncation flags."""
        ids, types, cut = encode_texts(self.tokenizer, texts, None, self.max_length)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out, cut
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        for index in eval_batches(lengths, self.batch_size):
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


def check_external_data(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse an ONNX graph whose tensors live in files outside the artifact or its manifest.

    ONNX Runtime opens whatever path a tensor's `external_data` names; it is checked here
    first, without loading any tensor data. Raises ArtifactError naming the tensor and path.
    """
    onnx: Any = require("onnx", extra="compress")
    try:
        graph = onnx.load(str(root / ONNX_FILE), load_external_data=False).graph
    except Exception as exc:  # a protobuf that does not parse
        raise ArtifactError(f"{root / ONNX_FILE} is not a valid ONNX model: {exc}") from None
    for tensor in graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        # manifest names were checked to stay inside the artifact (verify_manifest)
        if location not in manifest["files"]:
            raise ArtifactError(
                f"{root / ONNX_FILE}: tensor '{tensor.name}' keeps its data in '{location}', "
                "outside the artifact's manifest; refusing to load this artifact"
            )


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
