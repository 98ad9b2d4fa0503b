"""ONNX export with a parity check, the BERT graph optimiser and ONNX Runtime int8 quantization."""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import ModelyardError
from modelyard.models.encoding import collate, encode_texts
from modelyard.plugins import require

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ParityError(ModelyardError):
    """An exported graph computes logits too far from the PyTorch model's."""


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    # the TorchScript exporter warns about its own deprecation and traced branches, and
    # onnxruntime's tools log advice meant for their developers; the parity check and the
    # report are what tell the user whether the result is right
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_onnx(
    model: Any, tokenizer: Any, path: Path, opset: int, sample: list[str], per_token: bool = False
) -> Path:
    """Export `model` (left unchanged) to `path` with dynamic batch and sequence axes; return `path`.

    The graph takes input_ids, attention_mask (and token_type_ids when the tokenizer makes
    them) and returns `logits`: one row a text, or with `per_token` (a token classifier) one
    row a word piece, its sequence axis dynamic too. Eager attention is exported: ONNX
    Runtime's optimiser recognises its pattern and fuses it.
    """
    export = copy.deepcopy(model).float().eval()
    # an embedding classifier is a plain module around a transformers encoder
    encoder = export if hasattr(export, "set_attn_implementation") else export.encoder
    encoder.set_attn_implementation("eager")
    ids, types, _ = encode_texts(tokenizer, sample[:2] or ["a"], None, 64)
    batch = collate(ids, types, np.arange(len(ids)), tokenizer.pad_token_id or 0)
    names = [n for n in _INPUTS if n in batch]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_export(), torch.inference_mode():
        torch.onnx.export(
            export,
            (),
            str(path),
            kwargs={n: batch[n] for n in names},
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": axes["input_ids"] if per_token else {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def optimise_bert(source: Path, target: Path, config: Any) -> dict[str, int]:
    """Fuse attention, layer norms and GELU of a BERT-style graph; return the fused-op counts.

    Writes the optimised graph to `target`. Graphs the optimiser does not recognise are
    written unfused (and still run); the counts say what happened.
    """
    optimizer: Any = require("onnxruntime.transformers.optimizer", extra="compress")
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    with _quiet_export():
        opt = optimizer.optimize_model(
            str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
    opt.save_model_to_file(str(target))
    stats = opt.get_fused_operator_statistics()
    return {k: int(v) for k, v in stats.items() if v}


def quantize_dynamic_int8(
    source: Path, target: Path, per_channel: bool = True, keep_head: bool = False
) -> Path:
    """Write `source` with int8 weights and dynamically quantized activations to `target`.

    Per-channel weight scales cost little speed and keep more accuracy (on SST-2 MiniLM:
    0.6 instead of 1.5 points lost). `keep_head` leaves the matrix products that produce the
    graph's outputs (the classifier head) in fp32; returns `target`.
    """
    onnx: Any = require("onnx", extra="compress")
    quant: Any = require("onnxruntime.quantization", extra="compress")
    exclude = output_matmuls(onnx.load(str(source))) if keep_head else []
    with _quiet_export():
        quant.quantize_dynamic(
            str(source),
            str(target),
            weight_type=quant.QuantType.QInt8,
            per_channel=per_channel,
            nodes_to_exclude=exclude,
            # an optimised graph has tensors without type information; this fills them in
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return target


def output_matmuls(model: Any) -> list[str]:
    """Return the names of the MatMul/Gemm nodes nearest each graph output, walking back
    through the element-wise and shape nodes between them (a head's bias Add, a Reshape)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    passthrough = {"Add", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze", "Transpose"}
    found: list[str] = []
    for output in model.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in passthrough:
            node = next((producer[i] for i in node.input if i in producer), None)
        if node is not None and node.op_type in {"MatMul", "Gemm"} and node.name not in found:
            found.append(node.name)
    return found


def calibration_batches(
    tokenizer: Any, texts: list[str], max_length: int, names: set[str]
) -> list[dict[str, np.ndarray]]:
    """Return `texts` tokenised as batches of 16 graph inputs (only the inputs in `names`)."""
    ids, types, _ = encode_texts(tokenizer, texts, None, max_length)
    pad = tokenizer.pad_token_id or 0
    return [
        {
            k: v.numpy()
            for k, v in collate(ids, types, np.arange(i, min(i + 16, len(ids))), pad).items()
            if k in names
        }
        for i in range(0, len(ids), 16)
    ]


class _Calibration:
    """Feeds batches of tokenised calibration texts to ONNX Runtime's calibrator."""

    def __init__(self, tokenizer: Any, texts: list[str], max_length: int, names: set[str]) -> None:
        self.batches = calibration_batches(tokenizer, texts, max_length, names)
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Return the next batch of model inputs, or None when all were given."""
        if self.position >= len(self.batches):
            return None
        self.position += 1
        return self.batches[self.position - 1]

    def rewind(self) -> None:
        """Start again from the first batch."""
        self.position = 0


def _weight_nodes(model: Any) -> list[str]:
    """Return the MatMul/Gemm nodes that multiply by a weight matrix and the Gathers that
    read an embedding table: the nodes whose weights int8 stores."""
    constants = {t.name for t in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if (node.op_type in ("MatMul", "Gemm") and any(i in constants for i in node.input))
        or (node.op_type == "Gather" and node.input[0] in constants)
    ]


def quantize_static_int8(
    source: Path, target: Path, tokenizer: Any, texts: list[str], max_length: int, per_channel: bool
) -> Path:
    """Write `source` as a QDQ int8 graph calibrated (min-max) on `texts` to `target`.

    Only products with weight matrices and embedding lookups are quantized (u8
    activations, s8 weights); attention scores and softmax stay fp32, where int8 costs
    most accuracy.
    """
    onnx: Any = require("onnx", extra="compress")
    quant: Any = require("onnxruntime.quantization", extra="compress")
    prepared = target.with_name(target.stem + ".prep.onnx")
    with _quiet_export():
        quant.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    names = {i.name for i in model.graph.input}
    with _quiet_export():
        quant.quantize_static(
            str(prepared),
            str(target),
            _Calibration(tokenizer, texts, max_length, names),
            quant_format=quant.QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=quant.QuantType.QUInt8,
            weight_type=quant.QuantType.QInt8,
            nodes_to_quantize=_weight_nodes(model),
            calibrate_method=quant.CalibrationMethod.MinMax,
        )
    prepared.unlink(missing_ok=True)
    return target


def torch_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """Return the fp32 logits of a PyTorch `model` on `texts`, one padded batch per text."""
    ids, types, _ = encode_texts(tokenizer, texts, None, max_length)
    rows = []
    with torch.inference_mode():
        for i in range(len(ids)):
            batch = collate(ids, types, np.array([i]), tokenizer.pad_token_id or 0)
            rows.append(model(**batch).logits.float().numpy()[0])
    return np.stack(rows)


def check_parity(
    reference: np.ndarray, candidate: np.ndarray, tolerance: float, what: str
) -> float:
    """Return the max absolute logit difference; raise ParityError when it exceeds `tolerance`."""
    gap = float(np.abs(reference - candidate).max()) if len(reference) else 0.0
    if gap > tolerance:
        raise ParityError(
            f"{what}: logits differ from PyTorch by up to {gap:.3g}, above the tolerance "
            f"{tolerance:g} (compress.quantize.parity_tolerance). The exported graph does not "
            "compute what the model does; raise the tolerance only if the gap is acceptable."
        )
    return gap
