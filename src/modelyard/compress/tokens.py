"""Compressing a run of another task (token classification): the ONNX export (fp32) and ONNX
Runtime int8 with dynamic activations, made by the classifier path's export and quantization
functions, each checked against the parent on per-piece logits and on entity spans, then
measured like classifier variants (entity F1 in the accuracy column).

This module never imports the task's package: the API layer passes a `TokenParent`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from modelyard.compress.base import MethodSpec, VariantParent, parse_methods, write_variant
from modelyard.compress.export import (
    calibration_batches,
    check_parity,
    export_onnx,
    optimise_bert,
    output_matmuls,
    quantize_dynamic_int8,
)
from modelyard.compress.measure import weights_size_mb
from modelyard.compress.smooth import smooth_graph
from modelyard.compress.sweep import PARENT, CompressResult, finish_report, output_dir, timed_rows
from modelyard.errors import ModelyardError, RecipeError
from modelyard.models.device import torch_threads
from modelyard.models.onnx_runtime import ONNX_FILE
from modelyard.plugins import require
from modelyard.recipe import CompressConfig, QuantizeConfig, Recipe

# the methods that apply to a token classifier; the others change or retrain a classifier head
TOKEN_METHODS = ("onnx", "int8-dynamic")
Log = Callable[[str], None]
Span = tuple[str, int, int]


class TokenParent(VariantParent, Protocol):
    """A token-classification run as compression uses it (`modelyard.tagging.compression`)."""

    onnx_kind: str

    @property
    def model(self) -> Any:
        """Return the PyTorch model."""
        ...

    @property
    def recipe(self) -> Recipe:
        """Return the run's recipe."""
        ...

    def manifest_extra(self) -> dict[str, Any]:
        """Return the task fields a variant's manifest repeats."""
        ...

    def sample(self, n: int, seed: int) -> list[list[str]]:
        """Return the words of a seeded sample of training sentences."""
        ...

    def test_sentences(self, data: Path | None) -> tuple[list[Any], str]:
        """Return the tagged sentences to score on and where they come from."""
        ...

    def graph_model(self, graph: Path, threads: int | None) -> Any:
        """Return an ONNX graph as a model the other methods accept."""
        ...

    def load_model(self, path: Path) -> Any:
        """Return the model of the verified artifact at `path`."""
        ...

    def piece_logits(self, model: Any, sentences: list[list[str]]) -> np.ndarray:
        """Return every word piece's logits, concatenated."""
        ...

    def spans(self, model: Any, texts: list[str]) -> list[list[Span]]:
        """Return the entity spans of each text."""
        ...

    def score(self, model: Any, sentences: list[Any]) -> dict[str, Any]:
        """Return entity-level metrics (f1, macro_f1, ...)."""
        ...


@dataclass
class TokenGraph:
    """An ONNX graph of a token classifier in the work directory, before it is an artifact."""

    graph: Path
    config: Any
    details: dict[str, Any]
    kind: str

    def save(self, directory: Path) -> None:
        """Copy the graph into `directory` as model.onnx, with the model's config.json (tags)."""
        shutil.copyfile(self.graph, directory / ONNX_FILE)
        self.config.save_pretrained(str(directory))


def token_specs(methods: list[str], explicit: bool, log: Log) -> list[MethodSpec]:
    """Return the specs of `methods` that apply to a token classifier.

    Asked for explicitly (`explicit`), a method that does not apply raises RecipeError;
    from the recipe's defaults it is skipped with a log line.
    """
    specs = parse_methods(methods)
    other = [s.label for s in specs if s.name not in TOKEN_METHODS]
    if other and explicit:
        raise RecipeError(
            f"{', '.join(other)} does not apply to a token-classification run: it compresses "
            f"with {' and '.join(TOKEN_METHODS)} (see docs/compress.md)"
        )
    if other:
        log(f"skipping {', '.join(other)}: not for a token-classification run")
    kept = [s for s in specs if s.name in TOKEN_METHODS]
    return kept or parse_methods(list(TOKEN_METHODS))


def span_agreement(reference: list[list[Span]], candidate: list[list[Span]]) -> float:
    """Return the fraction of texts whose entity spans (label, start, end) are all the same."""
    same = sum(a == b for a, b in zip(reference, candidate, strict=True))
    return round(same / max(len(reference), 1), 6)


def _smoothed(
    parent: TokenParent, fused: Path, q: QuantizeConfig, reference: np.ndarray, sample: list[Any]
) -> tuple[Path, dict[str, Any]]:
    """Return the graph int8-dynamic quantizes and what smoothing did.

    With q.smooth_alpha > 0 that is `fused` with its matrix products smoothed (the head
    excluded: it stays fp32), calibrated on training sentences; its fp32 logits must match
    the parent's within q.parity_tolerance (else ParityError), since smoothing must not change
    the function. With 0 it is `fused` itself.
    """
    if q.smooth_alpha <= 0:
        return fused, {"smooth_alpha": 0.0, "smoothed_products": 0}
    onnx: Any = require("onnx", extra="compress")
    model = onnx.load(str(fused), load_external_data=False)
    names = {i.name for i in model.graph.input}
    head = output_matmuls(model)
    words = parent.sample(q.calibration_samples, parent.recipe.run.seed)
    batches = calibration_batches(
        parent.tokenizer, [" ".join(w) for w in words], parent.recipe.model.max_length, names
    )
    target = fused.with_name("smoothed.onnx")
    count = smooth_graph(fused, target, batches, q.smooth_alpha, exclude=head)
    logits = parent.piece_logits(parent.graph_model(target, None), sample)
    gap = check_parity(reference, logits, q.parity_tolerance, "int8 smoothing")
    return target, {
        "smooth_alpha": q.smooth_alpha,
        "smoothed_products": count,
        "calibration_texts": len(words),
        "smoothing_parity_max_abs_diff": gap,
    }


def _build(
    parent: TokenParent,
    specs: list[MethodSpec],
    cfg: CompressConfig,
    out: Path,
    threads: int,
    log: Log,
) -> tuple[dict[str, Path], dict[str, str]]:
    q = cfg.quantize
    sample = parent.sample(q.parity_samples, parent.recipe.run.seed)
    texts = [" ".join(words) for words in sample]
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    plain = export_onnx(
        parent.model, parent.tokenizer, work / "plain.onnx", q.opset, texts, per_token=True
    )
    fused = work / "fused.onnx"
    ops = optimise_bert(plain, fused, parent.model.config)
    reference = parent.piece_logits(parent.model, sample)
    spans = parent.spans(parent.model, texts)
    made: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for i, spec in enumerate(specs, start=1):
        log(f"[{i}/{len(specs)}] {spec.label} ...")
        try:
            graph = fused
            smoothing: dict[str, Any] = {}
            if spec.name == "int8-dynamic":
                source, smoothing = _smoothed(parent, fused, q, reference, sample)
                graph = quantize_dynamic_int8(
                    source, work / "int8-dynamic.onnx", q.per_channel, keep_head=True
                )
            model = parent.graph_model(graph, threads)
            logits = parent.piece_logits(model, sample)
            if spec.name == "onnx":
                gap = check_parity(reference, logits, q.parity_tolerance, "ONNX export")
            else:
                gap = float(np.abs(reference - logits).max()) if len(reference) else 0.0
            details = {
                "opset": q.opset,
                "fused_ops": ops,
                "parity_texts": len(sample),
                "max_abs_logit_diff": gap,
                "span_agreement": span_agreement(spans, parent.spans(model, texts)),
            }
            if spec.name == "int8-dynamic":
                details["per_channel"] = q.per_channel
                details["fp32_head"] = True
                details.update(smoothing)
            variant = TokenGraph(graph, parent.model.config, details, parent.onnx_kind)
            made[spec.label] = write_variant(
                variant, parent, spec.label, out / spec.slug, parent.manifest_extra()
            )
        except ModelyardError as exc:
            failed[spec.label] = str(exc)
            log(f"[{i}/{len(specs)}] {spec.label} failed: {exc}")
    return made, failed


@dataclass
class _Spans:
    """A model timed as a predictor: texts in, entity spans out."""

    parent: TokenParent
    model: Any

    def predict_proba(self, texts: list[str]) -> list[list[Span]]:
        return self.parent.spans(self.model, texts)


def _measure(
    parent: TokenParent,
    artifacts: dict[str, Path],
    sentences: list[Any],
    cfg: CompressConfig,
    threads: int,
    log: Log,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    loaded: dict[str, Any] = {}
    for name, path in artifacts.items():
        model = parent.model if name == PARENT else parent.load_model(path)
        metrics = parent.score(model, sentences)
        rows.append(
            {
                "name": name,
                "path": str(path),
                "kind": parent.onnx_kind if name != PARENT else parent.manifest.get("kind"),
                "accuracy": metrics["f1"],  # entity-level F1: the figure a tagger is judged by
                "macro_f1": metrics["macro_f1"],
                "precision": metrics["precision"],
                "recall": metrics["recall"],
                "size_mb": weights_size_mb(path),
                "memory_mb": None,  # the isolated memory probe loads classifier backends only
                "peak_rss_mb": None,
            }
        )
        loaded[name] = _Spans(parent, model)
    log(f"timing {len(loaded)} models, {cfg.rounds} interleaved round(s) ...")
    texts = [" ".join(s.tokens) for s in sentences]
    return timed_rows(rows, loaded, texts, cfg, threads)


def compress_token_run(
    parent: TokenParent,
    cfg: CompressConfig,
    explicit: bool,
    data: str | Path | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    log: Log | None = None,
) -> CompressResult:
    """Compress a token-classification run with the methods of `cfg` that apply (see
    `token_specs`), and measure each variant's entity F1, size and speed against it.

    Each variant is an `onnx-token-classifier` artifact under `output` (default
    `RUN-compressed/`) that `predict` and `serve` load like the run. The fp32 export must
    match the parent's per-piece logits within compress.quantize.parity_tolerance (else it
    is listed as failed); every variant records its largest logit gap and the fraction of
    sample sentences whose entity spans equal the parent's. Raises RecipeError for methods
    that do not apply, ArtifactError for a bad output folder, DataError for bad data.
    """
    say = log or (lambda _msg: None)
    specs = token_specs(cfg.methods, explicit, say)
    threads = cfg.threads or torch.get_num_threads()
    out = output_dir(parent.path, output, overwrite)
    with torch_threads(threads):
        sentences, source = parent.test_sentences(Path(data) if data is not None else None)
        made, failed = _build(parent, specs, cfg, out, threads, say)
        shutil.rmtree(out / ".work", ignore_errors=True)
        rows = _measure(parent, {PARENT: parent.path, **made}, sentences, cfg, threads, say)
    setting = {
        "task": parent.manifest.get("task"),
        "accuracy_metric": "entity-level F1 (seqeval)",
        "test_data": source,
        "test_rows": len(sentences),
        "threads": threads,
    }
    return finish_report(out, parent.path, rows, failed, cfg, setting)
