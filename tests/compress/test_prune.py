"""Pruning: heads and neurons are really gone from the weight shapes; magnitude pruning
reaches its sparsity and keeps the zeros through recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modelyard.backends import load_backend
from modelyard.compress import COMPRESSION_METHODS, CompressContext
from modelyard.compress.base import MethodSpec, parse_methods, save_variant
from modelyard.compress.prune import heads_to_keep, neurons_to_keep, sparsity
from modelyard.compress.torch_variant import encoder_layers
from modelyard.errors import RecipeError


def test_pruned_heads_are_gone_from_the_weights(ctx: CompressContext, tmp_path: Path) -> None:
    variant = COMPRESSION_METHODS.get("prune-heads")(ctx, "0.5")  # 2 of the 4 heads (2 layers x 2)
    layers = encoder_layers(variant.model)
    assert [layer.attention.self.query.weight.shape for layer in layers] == [(16, 32), (16, 32)]
    assert [layer.attention.output.dense.weight.shape for layer in layers] == [(32, 16), (32, 16)]
    assert variant.details["heads_before"] == 4 and variant.details["heads_after"] == 2
    path = save_variant(variant, ctx, MethodSpec("prune-heads", "0.5"), tmp_path / "heads")
    reloaded = load_backend(path).run.model
    for layer in encoder_layers(reloaded):
        assert layer.attention.self.key.weight.shape == (16, 32)
    parent = encoder_layers(ctx.run.model)[0]
    assert parent.attention.self.query.weight.shape == (32, 32)


def test_pruned_neurons_are_gone_from_the_weights(ctx: CompressContext) -> None:
    variant = COMPRESSION_METHODS.get("prune-ffn")(ctx, "0.25")
    for layer in encoder_layers(variant.model):
        assert layer.intermediate.dense.weight.shape == (48, 32)
        assert layer.output.dense.weight.shape == (32, 48)


def test_every_layer_keeps_a_head_and_the_least_important_go_first() -> None:
    scores = [torch.tensor([0.1, 5.0, 4.0]), torch.tensor([0.001, 0.002, 0.003])]
    kept = heads_to_keep(scores, 0.5)  # 3 of 6 heads go
    assert sum(len(k) for k in kept) == 3
    assert kept[0] == [1, 2] and len(kept[1]) == 1
    assert heads_to_keep(scores, 0.99) == [[1], [2]]


def test_neurons_to_keep_takes_the_top_per_layer() -> None:
    assert neurons_to_keep([torch.tensor([3.0, 1.0, 2.0, 0.0])], 0.5) == [[0, 2]]


def test_magnitude_pruning_reaches_its_sparsity(ctx: CompressContext) -> None:
    variant = COMPRESSION_METHODS.get("prune")(ctx, "0.6")
    assert variant.details["recovery_steps"] == ctx.cfg.prune.recovery_steps > 0
    assert sparsity(variant.model) == pytest.approx(0.6, abs=0.01)
    assert sparsity(ctx.run.model) < 0.01
    assert not any("weight_orig" in k for k in variant.model.state_dict())


def test_per_layer_scope_prunes_every_layer_alike(ctx: CompressContext) -> None:
    layer_ctx = CompressContext(
        ctx.run,
        ctx.cfg.model_copy(update={"prune": ctx.cfg.prune.model_copy(update={"scope": "layer"})}),
        ctx.work_dir,
        ctx.seed,
        ctx.threads,
    )
    variant = COMPRESSION_METHODS.get("prune")(layer_ctx, "0.5")
    for module in encoder_layers(variant.model).modules():
        if isinstance(module, torch.nn.Linear):
            assert float((module.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("spec", ["prune-heads:1.5", "prune:0", "prune-ffn:half", "onnx:3"])
def test_bad_arguments_are_refused_before_any_work(spec: str) -> None:
    with pytest.raises(RecipeError, match=spec.split(":")[0]):
        parse_methods([spec])


def test_compression_json_records_the_shapes(ctx: CompressContext, tmp_path: Path) -> None:
    variant = COMPRESSION_METHODS.get("prune-heads")(ctx, "0.25")
    path = save_variant(variant, ctx, MethodSpec("prune-heads", "0.25"), tmp_path / "p")
    info = json.loads((path / "compression.json").read_text())
    assert sum(s["heads"] for s in info["shapes"]) == 3 and info["method"] == "prune-heads:0.25"
