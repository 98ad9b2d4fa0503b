"""LoRA, DoRA, IA3 and prompt tuning: identity at initialisation, adapters, merging, wrong base."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import modelyard
from modelyard.errors import ArtifactError, RecipeError
from modelyard.methods import merge_run
from modelyard.methods.adapters import base_weights_sha256, load_adapter_model
from modelyard.methods.peft_methods import prepare_ia3, prepare_lora
from modelyard.models import build_classifier, load_tokenizer
from modelyard.recipe import build_recipe
from modelyard.registry import load_run
from modelyard.registry.manifest import parent_of
from tests.methods.conftest import make_recipe, make_split_files, with_train

LABELS = ["account", "billing", "shipping"]


@pytest.fixture()
def classifier(tiny_backbone: Path) -> Any:
    torch.manual_seed(0)
    return build_classifier(tiny_backbone, LABELS).eval()


@pytest.fixture()
def batch(tiny_backbone: Path) -> dict[str, torch.Tensor]:
    tok = load_tokenizer(tiny_backbone)
    return dict(
        tok(["refund my card", "where is the parcel today"], padding=True, return_tensors="pt")
    )


def _recipe(method: str, **options: Any) -> Any:
    return build_recipe({"data": {"path": "unused.csv"}, "train": {"method": method, **options}})


@pytest.mark.parametrize("use_dora", [False, True])
def test_fresh_lora_leaves_outputs_unchanged(classifier: Any, batch: dict, use_dora: bool) -> None:
    before = classifier(**batch).logits
    adapted = prepare_lora(copy.deepcopy(classifier), _recipe("lora", lora={"use_dora": use_dora}))
    after = adapted.eval()(**batch).logits
    assert torch.allclose(before, after, atol=1e-6)
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)
    assert not any("word_embeddings" in n for n in trainable)


def test_fresh_ia3_leaves_outputs_unchanged(classifier: Any, batch: dict) -> None:
    before = classifier(**batch).logits
    after = prepare_ia3(copy.deepcopy(classifier), _recipe("ia3")).eval()(**batch).logits
    assert torch.allclose(before, after, atol=1e-6)


def test_unknown_target_module_lists_the_modules_that_exist(classifier: Any) -> None:
    recipe = _recipe("lora", lora={"target_modules": ["query", "q_proj"]})
    with pytest.raises(RecipeError) as err:
        prepare_lora(classifier, recipe)
    message = str(err.value)
    assert "'q_proj'" in message and "'query'" not in message
    for name in ("query", "key", "value", "dense", "classifier"):
        assert name in message


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({"method": "lora", "lora": {"rank": 0}}, "train.lora.rank"),
        ({"method": "lora", "lora": {"alpha": -1}}, "train.lora.alpha"),
        ({"method": "lora", "lora": {"target_modules": []}}, "train.lora.target_modules"),
        ({"method": "lora", "lora": {"ranks": 4}}, "allowed keys here: alpha, dropout, rank"),
        ({"method": "full", "lora": {"rank": 4}}, "set train.method=lora"),
        ({"method": "lorra"}, "available: bitfit, full, ia3, linear-probe, lora"),
        (
            {"method": "ia3", "ia3": {"target_modules": ["key"], "feedforward_modules": ["dense"]}},
            "subset of target_modules",
        ),
        ({"method": "lora", "memory": {"fisher": True}}, "saves a 'adapter-classifier'"),
    ],
)
def test_bad_method_options_are_clear_recipe_errors(train: dict, expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        _recipe(**train)


def test_prompt_tuning_longer_than_the_positions_is_refused(classifier: Any) -> None:
    from modelyard.methods.peft_methods import prepare_prompt_tuning

    recipe = build_recipe(
        {
            "data": {"path": "x.csv"},
            "model": {"max_length": 120},
            "train": {"method": "prompt-tuning", "prompt_tuning": {"num_virtual_tokens": 20}},
        }
    )
    with pytest.raises(RecipeError, match="exceed the model's 128 positions"):
        prepare_prompt_tuning(classifier, recipe)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Any:
    folder = tmp_path_factory.mktemp("lora")
    base = make_recipe(folder, tiny_backbone, make_split_files(folder))
    recipe = with_train(base, method="lora", lr=2e-2, epochs=2, lora={"rank": 4})
    return modelyard.train(build_recipe(recipe), progress=False)


def test_adapter_artifact_is_small_and_names_its_base(lora_run: Any, tiny_backbone: Path) -> None:
    run = lora_run.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "adapter-classifier"
    assert manifest["base_sha256"] == base_weights_sha256(tiny_backbone)
    assert "model.safetensors" not in manifest["files"]
    adapter = (run / "adapter_model.safetensors").stat().st_size
    assert adapter < (tiny_backbone / "model.safetensors").stat().st_size / 3
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] is None
    t = lora_run.training
    assert t["trainable_parameters"] < t["parameters"] and t["trainable_pct"] < 50


def test_merged_and_unmerged_adapters_predict_the_same(lora_run: Any, tmp_path: Path) -> None:
    merged = merge_run(lora_run.run_dir, tmp_path / "merged")
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["kind"] == "classifier" and not Path(manifest["parent"]).is_absolute()
    assert parent_of(merged, manifest) == lora_run.run_dir.resolve()
    texts = ["refund my invoice", "the parcel is late", "reset my password please", "help"]
    merged_probs = [r["prob_billing"] for r in modelyard.predict(merged, texts)]
    adapter = load_run(lora_run.run_dir)
    unmerged = load_adapter_model(adapter.path, adapter.manifest, adapter.labels, merge=False)
    assert type(unmerged).__name__.startswith("Peft")
    enc = adapter.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = unmerged(**enc).logits / adapter.temperature  # the merged run keeps T
        probs = torch.softmax(logits, dim=-1)[:, adapter.labels.index("billing")]
    assert probs.tolist() == pytest.approx(merged_probs, abs=1e-5)
    assert load_run(merged).temperature == adapter.temperature


def test_merge_folds_the_trained_update_into_the_base_weights(
    lora_run: Any, tiny_backbone: Path, tmp_path: Path
) -> None:
    merged = load_file(str(merge_run(lora_run.run_dir, tmp_path / "m") / "model.safetensors"))
    base = load_file(str(tiny_backbone / "model.safetensors"))
    key = "encoder.layer.0.attention.self.{}.weight"
    assert not torch.equal(merged["bert." + key.format("query")], base[key.format("query")])
    assert torch.equal(merged["bert." + key.format("key")], base[key.format("key")])


def test_merge_refuses_an_existing_output_and_a_full_run(lora_run: Any, tmp_path: Path) -> None:
    out = merge_run(lora_run.run_dir, tmp_path / "merged")
    with pytest.raises(ArtifactError, match="already exists"):
        merge_run(lora_run.run_dir, out)
    with pytest.raises(ArtifactError, match="merge needs an adapter run"):
        merge_run(out)


def test_adapter_on_another_base_is_refused(
    lora_run: Any, tiny_backbone: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-base"
    shutil.copytree(tiny_backbone, other)
    weights = load_file(str(other / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    run = load_run(lora_run.run_dir)
    with pytest.raises(ArtifactError, match="adapter for a base whose weights have SHA-256"):
        load_adapter_model(run.path, run.manifest, run.labels, merge=True, base=str(other))


def test_prompt_tuning_adapter_cannot_be_merged(method_recipe: dict) -> None:
    recipe = with_train(
        method_recipe, method="prompt-tuning", max_steps=1, prompt_tuning={"num_virtual_tokens": 4}
    )
    result = modelyard.train(build_recipe(recipe), progress=False)
    with pytest.raises(ArtifactError, match="cannot be merged"):
        merge_run(result.run_dir)
