"""SmoothQuant-style smoothing before dynamic int8: the function is kept, outlier channels no
longer set one coarse int8 step for every channel, the head and shared weights are handled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from modelyard.compress.export import output_matmuls, quantize_dynamic_int8  # noqa: E402
from modelyard.compress.smooth import smooth_graph, smoothing_scales  # noqa: E402

OUTLIER = 3  # the input channel that is 40 times larger than the others, as in a layer norm's


def body_and_head(path: Path, shared: bool = False) -> Path:
    """Save x -> MatMul(w1) -> Relu -> MatMul(w2) -> Add(b) -> logits; return path.

    With `shared`, a second product reads w1 too and is added to the first.
    """
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(64, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(32, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(4, dtype=np.float32), "b"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="/body/MatMul")]
    if shared:
        nodes += [
            helper.make_node("MatMul", ["x", "w1"], ["h2"], name="/body/MatMul2"),
            helper.make_node("Add", ["h", "h2"], ["hs"], name="/body/Add"),
            helper.make_node("Relu", ["hs"], ["r"], name="/body/Relu"),
        ]
    else:
        nodes.append(helper.make_node("Relu", ["h"], ["r"], name="/body/Relu"))
    nodes += [
        helper.make_node("MatMul", ["r", "w2"], ["m"], name="/classifier/MatMul"),
        helper.make_node("Add", ["m", "b"], ["logits"], name="/classifier/Add"),
    ]
    graph = helper.make_graph(
        nodes,
        "body-and-head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def inputs(seed: int, rows: int = 64) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, 64)).astype(np.float32)
    x[:, OUTLIER] *= 40
    return x


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"x": x})[0]


def smoothed(source: Path, target: Path, alpha: float = 0.9) -> int:
    head = output_matmuls(onnx.load(str(source)))
    batches = [{"x": inputs(seed)} for seed in (1, 2)]
    return smooth_graph(source, target, batches, alpha, exclude=head)


def test_smoothing_keeps_the_function_and_leaves_the_head(tmp_path: Path) -> None:
    source = body_and_head(tmp_path / "m.onnx")
    assert smoothed(source, tmp_path / "s.onnx") == 1  # the body's product, not the head's
    x = inputs(7)
    assert np.abs(run(tmp_path / "s.onnx", x) - run(source, x)).max() < 1e-3
    ops = {n.name: n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node}
    assert ops["/body/MatMul_smooth"] == "Mul"
    assert "/classifier/MatMul_smooth" not in ops


def test_smoothing_cuts_the_int8_error_of_an_outlier_channel(tmp_path: Path) -> None:
    source = body_and_head(tmp_path / "m.onnx")
    smoothed(source, tmp_path / "s.onnx")
    x = inputs(7)
    exact = run(source, x)
    plain = quantize_dynamic_int8(source, tmp_path / "q.onnx", keep_head=True)
    smooth = quantize_dynamic_int8(tmp_path / "s.onnx", tmp_path / "sq.onnx", keep_head=True)
    plain_error = np.abs(run(plain, x) - exact).mean()
    smooth_error = np.abs(run(smooth, x) - exact).mean()
    # one int8 scale for all channels leaves the ordinary ones a few steps (error 4.7 here);
    # smoothed, the outlier's range moves into its weight row (error 1.3)
    assert smooth_error < plain_error / 2


def test_a_shared_weight_is_copied_per_product(tmp_path: Path) -> None:
    source = body_and_head(tmp_path / "m.onnx", shared=True)
    assert smoothed(source, tmp_path / "s.onnx") == 2
    x = inputs(7)
    assert np.abs(run(tmp_path / "s.onnx", x) - run(source, x)).max() < 1e-3
    model = onnx.load(str(tmp_path / "s.onnx"))
    weights = {n.name: n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    assert weights["/body/MatMul"] != weights["/body/MatMul2"]


def test_scales_follow_alpha_and_skip_dead_channels() -> None:
    act = np.array([4.0, 1.0, 0.0], dtype=np.float32)
    weight = np.array([[1.0, -1.0], [0.25, 0.0], [2.0, 0.5]], dtype=np.float32)
    assert np.allclose(smoothing_scales(act, weight, 1.0), [4.0, 1.0, 1.0])
    assert np.allclose(smoothing_scales(act, weight, 0.5), [2.0, 2.0, 1.0])
