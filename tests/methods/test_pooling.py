"""`model.pooling: mean`: a mean-pooled head under every method that builds the task model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import modelyard
from modelyard.errors import RecipeError
from modelyard.methods import merge_run
from modelyard.methods.embedding import EmbeddingClassifier, is_embedding_classifier
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from tests.methods.conftest import with_train

TEXTS = ["refund my card please", "where is the parcel today", "reset my password"]


def _mean(recipe: dict, **train: object) -> dict:
    return {**with_train(recipe, **train), "model": {**recipe["model"], "pooling": "mean"}}


def _probs(run: object) -> torch.Tensor:
    rows = modelyard.predict(run, TEXTS)  # type: ignore[arg-type]
    return torch.tensor([[float(v) for _, v in sorted(r["probabilities"].items())] for r in rows])


def test_cls_stays_the_default() -> None:
    assert build_recipe({"data": {"path": "x.csv"}}).model.pooling == "cls"


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(RecipeError, match="pooling"):
        build_recipe({"data": {"path": "x.csv"}, "model": {"pooling": "max"}})


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"method": "prompt-tuning"}, "prompt-tuning"),
        ({"memory": {"fisher": True}}, "memory.fisher"),
    ],
)
def test_combinations_that_need_the_backbone_head_are_refused(train: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        build_recipe({"data": {"path": "x.csv"}, "model": {"pooling": "mean"}, "train": train})


def test_full_run_saves_an_embedding_classifier_that_reloads(method_recipe: dict) -> None:
    result = modelyard.train(build_recipe(_mean(method_recipe, epochs=2)), progress=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "embedding-classifier"
    loaded = load_run(result.run_dir)
    assert isinstance(loaded.model, EmbeddingClassifier)
    # the trained head is saved, not the zero head a fresh model starts with
    assert loaded.model.head.weight.abs().sum() > 0
    torch.testing.assert_close(_probs(loaded), _probs(result.run_dir))


def test_linear_probe_trains_only_the_mean_pooled_head(method_recipe: dict) -> None:
    result = modelyard.train(
        build_recipe(_mean(method_recipe, method="linear-probe")), progress=False
    )
    hidden = 32
    assert result.training["trainable_parameters"] == (hidden + 1) * 3


def test_lora_adapter_on_a_mean_pooled_head_reloads_and_merges(method_recipe: dict) -> None:
    pytest.importorskip("peft")
    recipe = _mean(method_recipe, method="lora", lr=2e-2, epochs=2)
    result = modelyard.train(build_recipe(recipe), progress=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "adapter-classifier"
    weights = result.run_dir / "adapter_model.safetensors"
    from safetensors.torch import load_file

    names = set(load_file(weights))
    assert any("lora_A" in n for n in names) and any("head" in n for n in names)
    loaded = load_run(result.run_dir)
    assert is_embedding_classifier(loaded.model)
    merged = merge_run(result.run_dir)
    assert json.loads((merged / "manifest.json").read_text())["kind"] == "embedding-classifier"
    torch.testing.assert_close(_probs(merged), _probs(loaded), rtol=1e-4, atol=1e-5)


def test_adapter_loads_onto_the_pooling_it_was_trained_with(method_recipe: dict) -> None:
    pytest.importorskip("peft")
    result = modelyard.train(
        build_recipe(_mean(method_recipe, method="lora", lr=2e-2)), progress=False
    )
    recipe_file: Path = result.run_dir / "recipe.yaml"
    assert "pooling: mean" in recipe_file.read_text()
    assert is_embedding_classifier(load_run(result.run_dir, device="cpu").model)


def test_private_lora_on_a_mean_pooled_head(method_recipe: dict) -> None:
    pytest.importorskip("peft")
    pytest.importorskip("opacus")
    recipe = _mean(method_recipe, method="lora", optimizer="sgd", lr=0.5, momentum=0.9, epochs=2)
    recipe["privacy"] = {"target_epsilon": 8, "accountant": "rdp"}
    result = modelyard.train(build_recipe(recipe), progress=False)
    record = result.training["privacy"]
    assert 0 < record["epsilon"] <= 8 and record["steps"] > 0
    assert is_embedding_classifier(load_run(result.run_dir).model)
