"""int8 with the classifier head kept in fp32: the head's matrix product is found and left alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from modelyard.compress.export import output_matmuls, quantize_dynamic_int8  # noqa: E402


def two_layer_graph(path: Path) -> Path:
    """Save x -> MatMul(w1) -> Relu -> MatMul(w2) -> Add(b) -> Reshape -> logits; return path."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(16, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(32, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(4, dtype=np.float32), "b"),
        numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="/body/MatMul"),
        helper.make_node("Relu", ["h"], ["r"], name="/body/Relu"),
        helper.make_node("MatMul", ["r", "w2"], ["m"], name="/classifier/MatMul"),
        helper.make_node("Add", ["m", "b"], ["a"], name="/classifier/Add"),
        helper.make_node("Reshape", ["a", "shape"], ["logits"], name="/out/Reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "two-layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_the_head_is_the_matmul_nearest_the_output(tmp_path: Path) -> None:
    model = onnx.load(str(two_layer_graph(tmp_path / "m.onnx")))
    assert output_matmuls(model) == ["/classifier/MatMul"]


def test_keep_head_quantizes_the_body_but_not_the_head(tmp_path: Path) -> None:
    source = two_layer_graph(tmp_path / "m.onnx")
    kept = onnx.load(str(quantize_dynamic_int8(source, tmp_path / "kept.onnx", keep_head=True)))
    whole = onnx.load(str(quantize_dynamic_int8(source, tmp_path / "whole.onnx")))
    kept_ops = {n.name: n.op_type for n in kept.graph.node}
    assert kept_ops["/classifier/MatMul"] == "MatMul"
    assert any(op == "MatMulInteger" for op in kept_ops.values())  # the body is int8
    assert sum(n.op_type == "MatMulInteger" for n in whole.graph.node) == 2
