"""Token classification through train → save → load → predict → evaluate, on the tiny BERT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import modelyard
from modelyard.errors import ArtifactError, RecipeError
from modelyard.recipe import build_recipe
from modelyard.registry.manifest import read_manifest
from modelyard.tagging import load_tagger
from tests.tagging.conftest import tagged_rows, write_conll, write_jsonl

TEXT = "please help password login with parcel 42 today."


def _recipe(base: dict[str, Any], **sections: dict[str, Any]) -> Any:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_recipe(raw, "recipe", [])


def test_full_run_learns_entities_and_saves_a_token_classifier(full_run: Path) -> None:
    metrics = json.loads((full_run / "metrics.json").read_text())["test"]
    assert metrics["evaluated_on"] == "test"
    assert metrics["f1"] > 0.6  # chance is near 0 for exact entity matches
    assert set(metrics["per_type"]) == {"LOC", "NUM", "PER"}
    manifest = read_manifest(full_run)
    assert manifest["kind"] == "token-classifier"
    assert manifest["tags"] == ["O", "B-LOC", "B-NUM", "B-PER", "I-PER"]
    assert (full_run / "model.safetensors").is_file() and (full_run / "report.md").is_file()
    assert "| LOC |" in (full_run / "report.md").read_text()


def test_predict_returns_entity_spans_with_character_offsets(full_run: Path) -> None:
    [answer] = modelyard.predict(full_run, TEXT)
    assert answer["words"][-1] == "." and len(answer["tags"]) == len(answer["words"])
    assert answer["truncated"] is False
    for entity in answer["entities"]:
        assert TEXT[entity["start"] : entity["end"]] == entity["text"]
        assert 0 < entity["score"] <= 1
    found = {(e["label"], e["text"]) for e in answer["entities"]}
    assert ("LOC", "parcel") in found and ("NUM", "42") in found
    assert modelyard.predict(full_run, [""]) == [
        {"entities": [], "tags": [], "words": [], "truncated": False}
    ]


def test_loaded_run_matches_what_training_measured(full_run: Path, tmp_path: Path) -> None:
    tagger = load_tagger(full_run)
    assert tagger.tags[0] == "O" and tagger.max_length == 32
    conll = write_conll(tmp_path / "more.conll", tagged_rows(30, seed=99))
    metrics = modelyard.evaluate(full_run, conll)
    assert metrics["sentences"] == 30 and 0 <= metrics["f1"] <= 1
    assert (full_run / "evaluations" / "more" / "metrics.json").is_file()


def _weights(folder: Path, suffix: str) -> torch.Tensor:
    tensors = load_file(str(folder / "model.safetensors"))
    [name] = [k for k in tensors if k.endswith(suffix)]
    return tensors[name]


def test_full_run_keeps_the_word_embeddings_and_trains_the_rest(
    full_run: Path, tiny_backbone: Path
) -> None:
    table = "word_embeddings.weight"
    assert torch.equal(_weights(full_run, table), _weights(tiny_backbone, table))
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(_weights(full_run, layer), _weights(tiny_backbone, layer))
    positions = "position_embeddings.weight"
    assert not torch.equal(_weights(full_run, positions), _weights(tiny_backbone, positions))


def test_frozen_word_embeddings_only_for_full_token_classification(
    tagging_recipe: dict[str, Any],
) -> None:
    assert _recipe(tagging_recipe).train.freeze_word_embeddings is True
    own = _recipe(tagging_recipe, train={"freeze_word_embeddings": False})
    assert own.train.freeze_word_embeddings is False
    assert _recipe(tagging_recipe, train={"method": "lora"}).train.freeze_word_embeddings is False
    classification = {k: v for k, v in tagging_recipe.items() if k != "task"}
    assert _recipe(classification).train.freeze_word_embeddings is False
    with pytest.raises(RecipeError, match="freeze_word_embeddings is for task token-class"):
        _recipe(classification, train={"freeze_word_embeddings": True})
    with pytest.raises(RecipeError, match="freeze_word_embeddings is for task token-class"):
        _recipe(tagging_recipe, train={"method": "lora", "freeze_word_embeddings": True})


def test_training_puts_the_models_own_dropout_back(tagging_recipe: dict[str, Any]) -> None:
    from modelyard.tagging.training import prepare_tagging_run

    run = prepare_tagging_run(_recipe(tagging_recipe, train={"epochs": 1}))
    before = [type(m) for m in run.model.modules()]
    run.train(Path(tagging_recipe["run"]["output_dir"]) / "one", progress=False)
    assert [type(m) for m in run.model.modules()] == before
    assert torch.nn.Dropout in before


def test_long_texts_are_flagged_truncated(full_run: Path) -> None:
    [answer] = modelyard.predict(full_run, "parcel " * 60)
    assert answer["truncated"] is True and answer["tags"][-1] == "O"


def test_evaluating_tags_the_model_does_not_know_is_refused(full_run: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"tokens": ["parcel"], "tags": ["B-ODD"]}])
    with pytest.raises(modelyard.errors.DataError, match="lacks tags found in the data: B-ODD"):
        modelyard.evaluate(full_run, path)


def test_lora_trains_on_bioes_conll_and_saves_a_merged_model(
    tagging_recipe: dict[str, Any], tmp_path: Path
) -> None:
    conll = write_conll(tmp_path / "ner.conll", tagged_rows(80, scheme="BIOES"))
    recipe = _recipe(
        tagging_recipe,
        data={"path": str(conll)},
        train={"method": "lora", "epochs": 2, "lr": 1e-2},
        run={"name": "lora"},
    )
    result = modelyard.train(recipe, progress=False)
    assert result.training["trainable_parameters"] < result.training["parameters"]
    manifest = read_manifest(result.run_dir)
    assert manifest["scheme"] == "BIOES" and manifest["method"] == "lora"
    assert not (result.run_dir / "adapter_config.json").exists()
    tagger = load_tagger(result.run_dir)
    assert "S-LOC" in tagger.tags
    [answer] = modelyard.predict(result.run_dir, TEXT)
    assert set(answer) == {"entities", "tags", "words", "truncated"}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"train": {"method": "prompt-tuning"}}, "trains with train.method full, lora"),
        (
            {"model": {"pooling": "mean"}},
            "model.pooling and model.head_init are for classification",
        ),
        ({"data": {"augment": {"n": 1}}}, "data.augment is for classification runs"),
        ({"data": {"redact_pii": True}}, "data.redact_pii is for classification runs"),
        ({"privacy": {"target_epsilon": 8}}, "privacy is for classification runs"),
    ],
)
def test_recipe_refuses_what_token_classification_cannot_do(
    tagging_recipe: dict[str, Any], sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecipeError, match=message):
        _recipe(tagging_recipe, **sections)


def test_recipe_refuses_a_decoder_backbone(tagging_recipe: dict[str, Any]) -> None:
    with pytest.raises(RecipeError, match="task 'token-classification' needs an encoder"):
        _recipe(tagging_recipe, model={"backbone": "smollm2-135m"})


def test_jsonl_keys_default_to_tokens_and_tags(tagging_recipe: dict[str, Any]) -> None:
    recipe = _recipe(tagging_recipe)
    assert (recipe.data.text_column, recipe.data.label_column) == ("tokens", "tags")
    own = _recipe(tagging_recipe, data={"text_column": "words"})
    assert own.data.text_column == "words"


def test_batches_group_by_length_in_windows_of_two_unless_the_recipe_says(
    tagging_recipe: dict[str, Any],
) -> None:
    train = _recipe(tagging_recipe).train
    assert (train.group_by_length, train.group_window) == (True, 2)
    own = _recipe(tagging_recipe, train={"group_by_length": False, "group_window": 8}).train
    assert (own.group_by_length, own.group_window) == (False, 8)
    # classification keeps its wide windows
    classification = {k: v for k, v in tagging_recipe.items() if k != "task"}
    train = _recipe(classification).train
    assert (train.group_by_length, train.group_window) == (True, 50)


def test_file_prediction_refuses_a_token_run(full_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a classification run: file prediction"):
        modelyard.predict_file(full_run, tmp_path / "in.csv", tmp_path / "out.csv")


def test_cli_predict_prints_the_spans(full_run: Path) -> None:
    from typer.testing import CliRunner

    from modelyard.cli import app

    result = CliRunner().invoke(app, ["predict", str(full_run), TEXT])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["words"][0] == "please"
