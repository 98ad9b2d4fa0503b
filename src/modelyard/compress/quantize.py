"""Export and quantization methods: `onnx`, `int8-dynamic`, `int8-static`, `torch-int8`,
`fp16` and `bf16`."""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.compress.base import (
    CompressContext,
    refuse_embedding_parent,
    register_compression_method,
)
from modelyard.compress.export import (
    check_parity,
    export_onnx,
    optimise_bert,
    quantize_dynamic_int8,
    quantize_static_int8,
    torch_logits,
)
from modelyard.compress.onnx_backend import ONNX_FILE, ONNX_KIND, OnnxClassifier
from modelyard.compress.torch_variant import INT8, TorchCompressed, quantize_linear_int8


@dataclass
class OnnxCompressed:
    """An ONNX graph in the work directory, with a classifier over it."""

    graph: Path
    classifier: OnnxClassifier
    details: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    kind: str = ONNX_KIND

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities and truncation flags for `texts`."""
        return self.classifier.predict_proba(texts)

    def save(self, directory: Path) -> None:
        """Copy the graph into `directory` as model.onnx, with the model's config.json."""
        shutil.copyfile(self.graph, directory / ONNX_FILE)
        if self.config is not None:
            self.config.save_pretrained(str(directory))


def _classifier(ctx: CompressContext, graph: Path) -> OnnxClassifier:
    run = ctx.run
    # the variant carries its parent's calibration temperature (save_variant copies its record)
    return OnnxClassifier(
        graph, run.tokenizer, run.labels, run.max_length, ctx.threads, temperature=run.temperature
    )


def _parity_texts(ctx: CompressContext) -> list[str]:
    if "parity_texts" not in ctx.cache:
        ctx.cache["parity_texts"] = ctx.sample_texts(ctx.cfg.quantize.parity_samples)
    texts: list[str] = ctx.cache["parity_texts"]
    return texts


def _reference_logits(ctx: CompressContext) -> np.ndarray:
    if "reference_logits" not in ctx.cache:
        run = ctx.run
        ctx.cache["reference_logits"] = torch_logits(
            run.model, run.tokenizer, _parity_texts(ctx), run.max_length
        )
    logits: np.ndarray = ctx.cache["reference_logits"]
    return logits


def _gap(ctx: CompressContext, classifier: OnnxClassifier) -> float:
    logits, _ = classifier.predict_logits(_parity_texts(ctx))
    return float(np.abs(logits - _reference_logits(ctx)).max())


def plain_graph(ctx: CompressContext) -> Path:
    """Return the exported fp32 graph of the parent model (exported once per context)."""
    if "plain_graph" not in ctx.cache:
        folder = ctx.scratch("onnx-export")
        path = export_onnx(
            ctx.run.model,
            ctx.run.tokenizer,
            folder / "plain.onnx",
            ctx.cfg.quantize.opset,
            _parity_texts(ctx),
        )
        ctx.cache["plain_graph"] = path
    graph: Path = ctx.cache["plain_graph"]
    return graph


def fused_graph(ctx: CompressContext) -> tuple[Path, dict[str, int]]:
    """Return the optimised (fused) fp32 graph and its fused-op counts, made once per context."""
    if "fused_graph" not in ctx.cache:
        plain = plain_graph(ctx)
        target = plain.with_name("fused.onnx")
        ctx.cache["fused_graph"] = (target, optimise_bert(plain, target, ctx.run.model.config))
    result: tuple[Path, dict[str, int]] = ctx.cache["fused_graph"]
    return result


@register_compression_method(
    "onnx", "ONNX fp32 graph with fused attention, checked against PyTorch"
)
def onnx_fp32(ctx: CompressContext, arg: str | None) -> OnnxCompressed:
    """Return the model exported to ONNX (fp32, fused), after checking it against PyTorch.

    Raises ParityError when the logits differ by more than compress.quantize.parity_tolerance.
    """
    graph, fused = fused_graph(ctx)
    classifier = _classifier(ctx, graph)
    gap = check_parity(
        _reference_logits(ctx),
        classifier.predict_logits(_parity_texts(ctx))[0],
        ctx.cfg.quantize.parity_tolerance,
        "ONNX export",
    )
    details = {"opset": ctx.cfg.quantize.opset, "fused_ops": fused, "parity_max_abs_diff": gap}
    return OnnxCompressed(graph, classifier, details, ctx.run.model.config)


@register_compression_method(
    "int8-dynamic", "ONNX Runtime int8 weights, activations quantized on the fly"
)
def onnx_int8_dynamic(ctx: CompressContext, arg: str | None) -> OnnxCompressed:
    """Return the fused ONNX graph with int8 weights and dynamically quantized activations."""
    fused, ops = fused_graph(ctx)
    per_channel = ctx.cfg.quantize.per_channel
    graph = quantize_dynamic_int8(fused, fused.with_name("int8-dynamic.onnx"), per_channel)
    classifier = _classifier(ctx, graph)
    details = {
        "fused_ops": ops,
        "per_channel": per_channel,
        "max_abs_logit_diff": _gap(ctx, classifier),
    }
    return OnnxCompressed(graph, classifier, details, ctx.run.model.config)


@register_compression_method(
    "int8-static", "ONNX Runtime int8 QDQ, activation ranges calibrated on training texts"
)
def onnx_int8_static(ctx: CompressContext, arg: str | None) -> OnnxCompressed:
    """Return a QDQ int8 graph whose activation ranges are calibrated on training texts."""
    q = ctx.cfg.quantize
    texts = ctx.sample_texts(q.calibration_samples)
    plain = plain_graph(ctx)
    graph = quantize_static_int8(
        plain,
        plain.with_name("int8-static.onnx"),
        ctx.run.tokenizer,
        texts,
        ctx.run.max_length,
        q.per_channel,
    )
    classifier = _classifier(ctx, graph)
    details = {
        "calibration_texts": len(texts),
        "per_channel": q.per_channel,
        "max_abs_logit_diff": _gap(ctx, classifier),
    }
    return OnnxCompressed(graph, classifier, details, ctx.run.model.config)


@register_compression_method("torch-int8", "PyTorch dynamic int8 on the Linear layers")
def torch_int8(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a PyTorch copy whose nn.Linear layers hold int8 weights (dynamic activations)."""
    per_channel = ctx.cfg.quantize.per_channel
    model = quantize_linear_int8(copy.deepcopy(ctx.run.model), per_channel)
    details = {"quantized": "nn.Linear", "per_channel": per_channel}
    return TorchCompressed(model, ctx.run, details, quantization=INT8)


def _half(ctx: CompressContext, dtype: torch.dtype) -> TorchCompressed:
    refuse_embedding_parent(ctx, str(dtype).removeprefix("torch."))
    model = copy.deepcopy(ctx.run.model).to(dtype)
    return TorchCompressed(model, ctx.run, {"dtype": str(dtype).removeprefix("torch.")})


@register_compression_method("fp16", "fp16 weights (GPUs)")
def fp16_weights(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a copy with fp16 weights (for GPUs; slow on most CPUs)."""
    return _half(ctx, torch.float16)


@register_compression_method("bf16", "bf16 weights (GPUs, CPUs with AMX or AVX-512-BF16)")
def bf16_weights(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a copy with bf16 weights (fast on GPUs and on CPUs with AMX or AVX-512-BF16)."""
    return _half(ctx, torch.bfloat16)
