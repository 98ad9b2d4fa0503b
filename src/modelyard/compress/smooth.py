"""SmoothQuant-style scale migration for ONNX Runtime's dynamic int8.

Dynamic int8 gives each activation tensor one scale (per tensor, per call). A transformer's
layer-norm outputs carry a few channels far larger than the rest (MiniLM-L6: one channel of
the feed-forward input reaches 28 where the median channel reaches 1.8), so that one scale
leaves the other channels few int8 steps. Smoothing divides each input channel of a matrix
product by s_j and multiplies the matching weight row by s_j, with
s_j = max|x_j|^alpha / max|w_j|^(1 - alpha): the product is unchanged in exact arithmetic,
and part of the outliers' range moves into the weights, which int8 stores per output channel.
The division is an explicit `Mul` before the product (the layer-norm output also feeds the
residual branch, so it cannot be folded into the norm's gain).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.plugins import require

# the nodes whose first input is an activation and second a weight matrix (in, out); the
# fused `Attention` op holds the query, key and value weights side by side in one matrix
SMOOTHED_OPS = ("MatMul", "Attention")


def smoothable_nodes(model: Any, exclude: Iterable[str] = ()) -> list[Any]:
    """Return the MatMul/Attention nodes of `model` whose second input is a 2-D weight
    initializer and whose first input is computed (not a constant), minus `exclude`."""
    weights = {t.name: t for t in model.graph.initializer if len(t.dims) == 2}
    skip = set(exclude)
    return [
        node
        for node in model.graph.node
        if node.op_type in SMOOTHED_OPS
        and node.name not in skip
        and len(node.input) > 1
        and node.input[1] in weights
        and node.input[0] not in weights
    ]


def activation_absmax(
    source: Path, tensors: list[str], batches: Iterable[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Return, for each tensor name, the largest absolute value of each last-axis channel over
    every row of `batches` (run through the graph at `source` with ONNX Runtime).

    Padding rows take part: they are a small share and their values are ordinary ones.
    """
    onnx: Any = require("onnx", extra="compress")
    ort: Any = require("onnxruntime", extra="compress")
    model = onnx.load(str(source))
    known = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in known:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    found: dict[str, np.ndarray] = {}
    for feed in batches:
        for name, value in zip(tensors, session.run(tensors, feed), strict=True):
            peak = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            found[name] = peak if name not in found else np.maximum(found[name], peak)
    return found


def smoothing_scales(act: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """Return the per-input-channel scales max|x_j|^alpha / max|w_j|^(1-alpha) of a product
    x @ weight (weight of shape (in, out)), 1 where a channel or its weight row is all zero."""
    w = np.abs(weight).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.power(act, alpha) / np.power(w, 1.0 - alpha)
    good = np.isfinite(s) & (s > 0)
    return np.where(good, s, 1.0).astype(np.float32)


def smooth_graph(
    source: Path,
    target: Path,
    batches: Iterable[dict[str, np.ndarray]],
    alpha: float,
    exclude: Iterable[str] = (),
) -> int:
    """Write `source` with smoothed matrix products (see the module docstring) to `target`;
    return how many products were smoothed.

    `batches` are model inputs whose activations set the scales (calibration data); the
    products named in `exclude` are left as they are. The graph computes the same function
    up to float rounding, which callers check against the original.
    """
    onnx: Any = require("onnx", extra="compress")
    numpy_helper = onnx.numpy_helper
    model = onnx.load(str(source))
    nodes = smoothable_nodes(model, exclude)
    inputs = sorted({n.input[0] for n in nodes})
    peaks = activation_absmax(source, inputs, batches) if nodes else {}
    weights = {t.name: t for t in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    for i, node in enumerate(nodes):
        weight = numpy_helper.to_array(weights[node.input[1]])
        scales = smoothing_scales(peaks[node.input[0]], weight, alpha)
        smoothed = (weight * scales[:, None]).astype(weight.dtype)
        name = node.input[1]
        if users[name] > 1:  # a weight shared with another node gets its own copy
            name = f"{name}_smoothed_{i}"
            model.graph.initializer.append(numpy_helper.from_array(smoothed, name))
            node.input[1] = name
        else:
            weights[name].CopyFrom(numpy_helper.from_array(smoothed, name))
        inverse = f"{node.name}_smooth_inverse"
        out = f"{node.name}_smoothed_input"
        model.graph.initializer.append(
            numpy_helper.from_array((1.0 / scales).astype(np.float32), inverse)
        )
        mul = onnx.helper.make_node(
            "Mul", [node.input[0], inverse], [out], name=f"{node.name}_smooth"
        )
        node.input[0] = out
        model.graph.node.append(mul)
    _topological(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return len(nodes)


def _topological(model: Any) -> None:
    """Reorder the graph's nodes so that each comes after the producers of its inputs."""
    ready = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    ready.add("")  # an omitted optional input
    pending = list(model.graph.node)
    ordered: list[Any] = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a missing input: keep the original order
            return
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)
