"""Quantization: int8 variants are smaller on disk and keep the model's predictions."""

from __future__ import annotations

import copy
from pathlib import Path

import onnx
import pytest
import torch

from modelyard.compress import COMPRESSION_METHODS, CompressContext
from modelyard.compress.base import MethodSpec, save_variant
from modelyard.compress.measure import weights_bytes
from modelyard.compress.torch_variant import int8_tensors, load_int8_tensors, quantize_linear_int8
from tests.compress.conftest import texts


def _saved(ctx: CompressContext, name: str, root: Path) -> Path:
    return save_variant(
        COMPRESSION_METHODS.get(name)(ctx, None), ctx, MethodSpec(name, None), root / name
    )


@pytest.fixture(scope="module")
def saved(ctx: CompressContext, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quantized")
    return {
        n: _saved(ctx, n, root)
        for n in ("onnx", "int8-dynamic", "int8-static", "torch-int8", "bf16")
    }


def test_int8_is_smaller_on_disk(saved: dict[str, Path], trained_run: Path) -> None:
    fp32_graph = weights_bytes(saved["onnx"])
    assert weights_bytes(saved["int8-dynamic"]) < 0.5 * fp32_graph
    assert weights_bytes(saved["int8-static"]) < fp32_graph
    assert weights_bytes(saved["torch-int8"]) < weights_bytes(trained_run)
    assert weights_bytes(saved["bf16"]) < 0.6 * weights_bytes(trained_run)


def test_int8_graphs_hold_int8_weights(saved: dict[str, Path]) -> None:
    for name in ("int8-dynamic", "int8-static"):
        graph = onnx.load(str(saved[name] / "model.onnx")).graph
        int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert int8, name
    static_ops = {n.op_type for n in onnx.load(str(saved["int8-static"] / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= static_ops


def test_int8_variants_agree_with_the_parent(ctx: CompressContext) -> None:
    sample = texts(40, seed=11)
    reference, _ = COMPRESSION_METHODS.get("onnx")(ctx, None).predict_proba(sample)
    for name in ("int8-dynamic", "int8-static", "torch-int8"):
        probs, _ = COMPRESSION_METHODS.get(name)(ctx, None).predict_proba(sample)
        agreement = (probs.argmax(1) == reference.argmax(1)).mean()
        assert agreement >= 0.9, (name, agreement)


@pytest.mark.parametrize("per_channel", [False, True])
def test_torch_int8_weights_round_trip_exactly(ctx: CompressContext, per_channel: bool) -> None:
    quantized = quantize_linear_int8(ctx.run.model, per_channel)
    tensors = int8_tensors(quantized)
    assert tensors["classifier.weight"].dtype == torch.int8
    other = copy.deepcopy(ctx.run.model)
    with torch.no_grad():
        for param in other.parameters():
            param.mul_(0.5)
    fresh = quantize_linear_int8(other, per_channel)
    batch = ctx.run.tokenizer(["refund my card"], return_tensors="pt")
    with torch.inference_mode():
        assert not torch.equal(fresh(**batch).logits, quantized(**batch).logits)
        load_int8_tensors(fresh, tensors)
        assert torch.equal(fresh(**batch).logits, quantized(**batch).logits)
