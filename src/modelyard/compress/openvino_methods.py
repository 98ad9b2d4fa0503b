"""OpenVINO methods: `openvino` (fp32), `openvino-bf16` and `openvino-int8`.

Each variant is an ONNX graph that OpenVINO compiles for the CPU it runs on. The fp32 and
bf16 variants take the plain export (OpenVINO fuses attention and layer norms itself; the
ONNX Runtime fusions are contrib ops it need not know); the int8 variant takes the QDQ graph
of `int8-static`, whose int8 products OpenVINO runs on VNNI or AMX.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from modelyard.compress.base import CompressContext, register_compression_method
from modelyard.compress.export import check_parity
from modelyard.compress.onnx_backend import OnnxClassifier
from modelyard.compress.openvino_backend import OPENVINO_KIND, write_openvino_record
from modelyard.compress.quantize import (
    OnnxCompressed,
    parity_texts,
    plain_graph,
    reference_logits,
    static_int8_graph,
)
from modelyard.models.openvino_runtime import Precision, make_openvino_session


@dataclass
class OpenVinoCompressed(OnnxCompressed):
    """An ONNX graph that OpenVINO runs in `precision`, with a classifier over it."""

    precision: Precision = "f32"
    kind: str = OPENVINO_KIND

    def save(self, directory: Path) -> None:
        """Write the graph and config (as the ONNX variant does) and the precision record."""
        super().save(directory)
        write_openvino_record(directory, self.precision)


def _variant(ctx: CompressContext, graph: Path, precision: Precision) -> OpenVinoCompressed:
    run = ctx.run
    classifier = OnnxClassifier(
        graph,
        run.tokenizer,
        run.labels,
        run.max_length,
        ctx.threads,
        temperature=run.temperature,
        session=partial(make_openvino_session, precision=precision),
    )
    logits = classifier.predict_logits(parity_texts(ctx))[0]
    gap = float(abs(logits - reference_logits(ctx)).max())
    details = {"runtime": "openvino", "precision": precision, "max_abs_logit_diff": gap}
    return OpenVinoCompressed(graph, classifier, details, run.model.config, precision=precision)


@register_compression_method("openvino", "OpenVINO fp32, checked against PyTorch (Intel CPUs)")
def openvino_fp32(ctx: CompressContext, arg: str | None) -> OpenVinoCompressed:
    """Return the fp32 ONNX export run by OpenVINO in fp32, after checking it against PyTorch.

    Raises ParityError when the logits differ by more than compress.quantize.parity_tolerance.
    """
    variant = _variant(ctx, plain_graph(ctx), "f32")
    check_parity(
        reference_logits(ctx),
        variant.classifier.predict_logits(parity_texts(ctx))[0],
        ctx.cfg.quantize.parity_tolerance,
        "OpenVINO fp32",
    )
    return variant


@register_compression_method(
    "openvino-bf16", "OpenVINO with bf16 activations and weights (CPUs with AMX or AVX-512-BF16)"
)
def openvino_bf16(ctx: CompressContext, arg: str | None) -> OpenVinoCompressed:
    """Return the fp32 ONNX export run by OpenVINO in bf16."""
    return _variant(ctx, plain_graph(ctx), "bf16")


@register_compression_method(
    "openvino-int8", "OpenVINO int8 (the int8-static QDQ graph; VNNI or AMX), fp32 elsewhere"
)
def openvino_int8(ctx: CompressContext, arg: str | None) -> OpenVinoCompressed:
    """Return the calibrated QDQ int8 graph run by OpenVINO, fp32 between the int8 products."""
    graph, texts = static_int8_graph(ctx)
    variant = _variant(ctx, graph, "f32")
    variant.details["calibration_texts"] = texts
    return variant
