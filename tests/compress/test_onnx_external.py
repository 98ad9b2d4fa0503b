"""An ONNX graph whose tensors live outside the artifact is refused before ONNX Runtime opens it."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from modelyard.compress.onnx_backend import ONNX_FILE, check_external_data
from modelyard.errors import ArtifactError


def _graph_with_external(root: Path, location: str) -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    node = helper.make_node("Add", ["x", "w"], ["logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])],
        initializer=[weight],
    )
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), str(root / ONNX_FILE))


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "weights.bin"])
def test_external_data_outside_the_manifest_is_refused(tmp_path: Path, location: str) -> None:
    root = tmp_path / "artifact"
    _graph_with_external(root, location)
    with pytest.raises(ArtifactError, match=f"keeps its data in '{location}'"):
        check_external_data(root, {"files": {ONNX_FILE: {}}})


def test_external_data_listed_in_the_manifest_passes(tmp_path: Path) -> None:
    root = tmp_path / "artifact"
    _graph_with_external(root, "weights.bin")
    check_external_data(root, {"files": {ONNX_FILE: {}, "weights.bin": {}}})
