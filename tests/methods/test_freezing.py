"""BitFit and the linear probe: frozen weights stay bit-identical, the rest trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import modelyard
from modelyard.methods.freezing import head_prefixes, prepare_bitfit, prepare_linear_probe
from modelyard.models import build_classifier
from modelyard.recipe import build_recipe
from tests.methods.conftest import with_train


def _train(recipe: dict, method: str) -> Any:
    return modelyard.train(
        build_recipe(with_train(recipe, method=method, max_steps=4)), progress=False
    )


def _compare(run_dir: Path, backbone: Path) -> tuple[set[str], set[str]]:
    trained = load_file(str(run_dir / "model.safetensors"))
    base = load_file(str(backbone / "model.safetensors"))
    same, changed = set(), set()
    for key, value in base.items():
        (same if torch.equal(trained["bert." + key], value) else changed).add(key)
    return same, changed


def test_bitfit_changes_only_biases_and_the_head(method_recipe: dict, tiny_backbone: Path) -> None:
    result = _train(method_recipe, "bitfit")
    same, changed = _compare(result.run_dir, tiny_backbone)
    # every weight (matrices, LayerNorm scales, embeddings) is bit-identical; biases moved
    assert changed and all(k.endswith(".bias") for k in changed)
    assert len(changed) > len([k for k in same if k.endswith(".bias")])


def test_linear_probe_leaves_the_whole_backbone_bit_identical(
    method_recipe: dict, tiny_backbone: Path
) -> None:
    result = _train(method_recipe, "linear-probe")
    same, changed = _compare(result.run_dir, tiny_backbone)
    assert not changed and same
    head = load_file(str(result.run_dir / "model.safetensors"))["classifier.weight"]
    assert head.abs().sum() > 0
    t = result.training
    assert t["trainable_parameters"] == 32 * 3 + 3 and t["trainable_pct"] < 5


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [(prepare_linear_probe, {"classifier.weight", "classifier.bias"}), (prepare_bitfit, None)],
)
def test_freezing_marks_the_right_parameters(
    tiny_backbone: Path, prepare: Any, expected: Any
) -> None:
    model = prepare(build_classifier(tiny_backbone, ["a", "b"]), None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert head_prefixes(model) == ("classifier.",)
    if expected is not None:
        assert trainable == expected
    else:
        assert trainable == {
            n
            for n, _ in model.named_parameters()
            if n.endswith(".bias") or n.startswith("classifier.")
        }


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing_trains_to_the_same_weights(
    method_recipe: dict, method: str
) -> None:
    runs = []
    for checkpointing in (False, True):
        spec = with_train(
            method_recipe, method=method, max_steps=3, gradient_checkpointing=checkpointing
        )
        spec["run"] = {**spec["run"], "name": f"gc-{checkpointing}"}
        runs.append(modelyard.train(build_recipe(spec), progress=False).run_dir)
    name = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    plain, recomputed = (load_file(str(run / name)) for run in runs)
    assert plain.keys() == recomputed.keys()
    for key in plain:
        assert torch.allclose(plain[key], recomputed[key], atol=1e-5), key


def test_gradient_checkpointing_is_switched_on(tiny_backbone: Path) -> None:
    from modelyard.methods.embedding import build_embedding_classifier
    from modelyard.models.build import enable_gradient_checkpointing

    for model in (
        build_classifier(tiny_backbone, ["a", "b"]),
        build_embedding_classifier(tiny_backbone, ["a", "b"]),
    ):
        layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
        assert layers and not any(m.gradient_checkpointing for m in layers)
        enable_gradient_checkpointing(model)
        assert all(m.gradient_checkpointing for m in layers)
