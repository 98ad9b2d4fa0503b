"""Pruning: unstructured magnitude pruning (`prune:S`) and structured pruning of attention
heads (`prune-heads:R`) and feed-forward neurons (`prune-ffn:R`), each with an optional
short recovery fine-tune.

Structured pruning ranks heads and neurons by a first-order Taylor estimate of the loss
change when they are removed (Michel et al. 2019, "Are Sixteen Heads Really Better than
One?"): the absolute sum of activation x gradient over a sample of training texts.
Removing them slices the weight matrices, so the model really gets smaller and faster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn.utils import prune as torch_prune

from modelyard.compress.base import CompressContext, fraction_arg, register_compression_method
from modelyard.compress.torch_variant import (
    TorchCompressed,
    encoder_layers,
    keep_heads,
    keep_neurons,
    layer_shapes,
)
from modelyard.models.device import select_dtype
from modelyard.models.encoding import Encoded, collate, eval_batches
from modelyard.recipe import EarlyStoppingConfig, TrainConfig
from modelyard.trainer.loop import FineTuner


def _sample(ctx: CompressContext, n: int) -> Encoded:
    data = ctx.train_encoded()
    rng = np.random.default_rng(ctx.seed)
    index = sorted(rng.permutation(len(data))[:n])
    types = [data.token_type_ids[i] for i in index] if data.token_type_ids else None
    return Encoded([data.input_ids[i] for i in index], types, [data.labels[i] for i in index], 0)


class _InputRecorder:
    """Keeps the inputs of the attention-output and feed-forward-output projections of every
    layer, with their gradients, while registered."""

    def __init__(self, layers: Any) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {"heads": [], "ffn": []}
        self.handles = [
            layer.attention.output.dense.register_forward_pre_hook(self._keep("heads"))
            for layer in layers
        ]
        self.handles += [
            layer.output.dense.register_forward_pre_hook(self._keep("ffn")) for layer in layers
        ]

    def _keep(self, kind: str) -> Callable[..., None]:
        def hook(_module: Any, args: tuple[torch.Tensor, ...]) -> None:
            args[0].retain_grad()
            self.inputs[kind].append(args[0])

        return hook

    def clear(self) -> None:
        """Forget the inputs of the last batch."""
        for kept in self.inputs.values():
            kept.clear()

    def remove(self) -> None:
        """Unregister the hooks."""
        for handle in self.handles:
            handle.remove()


def taylor_scores(
    model: Any, data: Encoded, pad_id: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return per-layer importance of every attention head and every feed-forward neuron.

    For a head or neuron, the score is sum over texts of |sum over its channels and tokens
    of activation x d(loss)/d(activation)|, the first-order loss change of removing it.
    `model` is left as it was (eval mode, gradients cleared).
    """
    layers = encoder_layers(model)
    heads = [torch.zeros(_n_heads(layer)) for layer in layers]
    ffn = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    recorder = _InputRecorder(layers)
    model.eval()
    try:
        for index in eval_batches(data.lengths(), 16):
            recorder.clear()
            batch = collate(data.input_ids, data.token_type_ids, index, pad_id)
            labels = torch.tensor([data.labels[i] for i in index])
            torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels).backward()
            _accumulate(recorder.inputs, heads, ffn, layers)
    finally:
        recorder.remove()
        model.zero_grad(set_to_none=True)
    return heads, ffn


def _n_heads(layer: Any) -> int:
    attn = layer.attention.self
    return int(attn.query.out_features) // int(attn.attention_head_size)


def _grad(x: torch.Tensor) -> torch.Tensor:
    return x.grad if x.grad is not None else torch.zeros_like(x)


def _accumulate(
    inputs: dict[str, list[torch.Tensor]],
    heads: list[torch.Tensor],
    ffn: list[torch.Tensor],
    layers: Any,
) -> None:
    with torch.no_grad():
        for i, x in enumerate(inputs["heads"]):
            per_channel = (x * _grad(x)).sum(dim=1)  # (batch, channels)
            size = layers[i].attention.self.attention_head_size
            heads[i] += per_channel.view(len(x), -1, size).sum(-1).abs().sum(0)
        for i, x in enumerate(inputs["ffn"]):
            ffn[i] += (x * _grad(x)).sum(dim=1).abs().sum(0)


def heads_to_keep(scores: list[torch.Tensor], fraction: float) -> list[list[int]]:
    """Return, per layer, the heads kept when the lowest-scoring `fraction` of all heads goes.

    Scores are normalised per layer (L2) before the global ranking, and every layer keeps
    at least one head.
    """
    normed = [s / (s.norm() + 1e-12) for s in scores]
    ranked = sorted(
        (float(v), layer, head) for layer, s in enumerate(normed) for head, v in enumerate(s)
    )
    budget = round(fraction * len(ranked))
    removed: list[set[int]] = [set() for _ in scores]
    for _, layer, head in ranked:
        if budget == 0:
            break
        if len(removed[layer]) + 1 < len(scores[layer]):
            removed[layer].add(head)
            budget -= 1
    return [[h for h in range(len(s)) if h not in removed[i]] for i, s in enumerate(scores)]


def neurons_to_keep(scores: list[torch.Tensor], fraction: float) -> list[list[int]]:
    """Return, per layer, the feed-forward units kept when each layer loses `fraction` of its lowest."""
    kept = []
    for s in scores:
        n_keep = max(1, len(s) - round(fraction * len(s)))
        kept.append(sorted(torch.topk(s, n_keep).indices.tolist()))
    return kept


def recover(ctx: CompressContext, model: Any, name: str) -> dict[str, Any]:
    """Fine-tune `model` in place for compress.prune.recovery_steps steps; return what ran."""
    steps = ctx.cfg.prune.recovery_steps
    if steps == 0:
        return {"recovery_steps": 0}
    parent = ctx.run.recipe.train
    cfg = TrainConfig(
        max_steps=steps,
        lr=ctx.cfg.prune.recovery_lr,
        batch_size=parent.batch_size,
        precision=parent.precision,
        warmup_ratio=0.0,
        checkpoint_every=None,
        early_stopping=EarlyStoppingConfig(patience=None),
    )
    device = torch.device("cpu")
    empty = Encoded([], None, [], 0)
    tuner = FineTuner(
        model,
        cfg,
        device,
        select_dtype(cfg.precision, device),
        ctx.run.tokenizer.pad_token_id or 0,
        ctx.seed,
        ctx.scratch(f"recover-{name}"),
        progress=False,
    )
    result = tuner.fit(ctx.train_encoded(), empty)
    model.eval()
    return {"recovery_steps": result.steps, "recovery_samples_per_s": result.samples_per_s}


def _importance(ctx: CompressContext, model: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    sample = _sample(ctx, ctx.cfg.prune.importance_samples)
    return taylor_scores(model, sample, ctx.run.tokenizer.pad_token_id or 0)


@register_compression_method(
    "prune-heads",
    "remove the least important fraction of attention heads",
    "fraction",
    "prune-heads:0.3",
)
def prune_heads(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a copy without the least important `arg` fraction of attention heads (default 0.3)."""
    fraction = fraction_arg("prune-heads", arg, 0.3)
    model = copy.deepcopy(ctx.run.model)
    before = sum(s["heads"] for s in layer_shapes(model))
    head_scores, _ = _importance(ctx, model)
    for layer, heads in zip(
        encoder_layers(model), heads_to_keep(head_scores, fraction), strict=True
    ):
        keep_heads(layer, heads)
    details = {"fraction": fraction, "heads_before": before, **recover(ctx, model, "heads")}
    shapes = layer_shapes(model)
    details["heads_after"] = sum(s["heads"] for s in shapes)
    return TorchCompressed(model, ctx.run, details, shapes=shapes)


@register_compression_method(
    "prune-ffn",
    "remove the least important fraction of feed-forward units",
    "fraction",
    "prune-ffn:0.3",
)
def prune_ffn(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a copy without the least important `arg` fraction of feed-forward units per layer."""
    fraction = fraction_arg("prune-ffn", arg, 0.3)
    model = copy.deepcopy(ctx.run.model)
    before = sum(s["intermediate"] for s in layer_shapes(model))
    _, ffn_scores = _importance(ctx, model)
    for layer, kept in zip(
        encoder_layers(model), neurons_to_keep(ffn_scores, fraction), strict=True
    ):
        keep_neurons(layer, kept)
    details = {"fraction": fraction, "neurons_before": before, **recover(ctx, model, "ffn")}
    shapes = layer_shapes(model)
    details["neurons_after"] = sum(s["intermediate"] for s in shapes)
    return TorchCompressed(model, ctx.run, details, shapes=shapes)


def _linear_weights(model: Any) -> list[tuple[torch.nn.Module, str]]:
    return [
        (m, "weight") for m in encoder_layers(model).modules() if isinstance(m, torch.nn.Linear)
    ]


def sparsity(model: Any) -> float:
    """Return the fraction of zeros among the encoder's Linear weights."""
    weights = [getattr(m, name) for m, name in _linear_weights(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, sum(w.numel() for w in weights))


@register_compression_method(
    "prune", "zero the smallest weights to a target sparsity, then recover", "fraction", "prune:0.5"
)
def prune_magnitude(ctx: CompressContext, arg: str | None) -> TorchCompressed:
    """Return a copy whose encoder Linear weights have `arg` sparsity (default 0.5), smallest
    magnitudes zeroed globally or per layer (compress.prune.scope), then recovered.

    The zeros stay zero during recovery (a mask); dense kernels do not skip them, so the
    report shows the latency change honestly (usually none).
    """
    target = fraction_arg("prune", arg, 0.5)
    model = copy.deepcopy(ctx.run.model)
    params = _linear_weights(model)
    if ctx.cfg.prune.scope == "global":
        torch_prune.global_unstructured(
            params, pruning_method=torch_prune.L1Unstructured, amount=target
        )
    else:
        for module, name in params:
            torch_prune.l1_unstructured(module, name, amount=target)
    details = {
        "target_sparsity": target,
        "scope": ctx.cfg.prune.scope,
        **recover(ctx, model, "magnitude"),
    }
    for module, name in params:
        torch_prune.remove(module, name)
    details["sparsity"] = round(sparsity(model), 4)
    return TorchCompressed(model, ctx.run, details)
