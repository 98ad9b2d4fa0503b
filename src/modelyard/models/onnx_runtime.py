"""ONNX Runtime sessions for any task's graph, and the check that a graph's tensors stay inside
its artifact.

PyTorch and ONNX Runtime in one process fight over the cores when their thread pools
overlap, so the session gets an explicit thread count and its workers do not spin after
a call (a spinning pool would steal the cores from the next PyTorch call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError
from modelyard.plugins import require

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
