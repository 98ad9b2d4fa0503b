"""The recipe's task field: defaults, backbone kinds, and what language-model runs refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import RecipeError
from modelyard.models import BACKBONES
from modelyard.recipe import BACKBONE_KINDS, build_recipe
from modelyard.recipe.tasks import folder_kind


def test_classification_stays_the_default() -> None:
    recipe = build_recipe({"data": {"path": "d.csv"}})
    assert recipe.task == "classification" and recipe.train.method == "full"
    assert recipe.train.early_stopping.metric == "macro_f1"


def test_generation_defaults_to_lora_on_smollm2() -> None:
    recipe = build_recipe({"task": "generation", "data": {"path": "d.jsonl"}})
    assert recipe.model.backbone == "smollm2-135m" and recipe.train.method == "lora"
    assert recipe.train.early_stopping.metric == "loss"
    assert build_recipe(recipe.model_dump(mode="json")) == recipe  # a saved recipe reloads as is


@pytest.mark.parametrize(
    ("task", "backbone", "message"),
    [
        (
            "generation",
            "minilm-l6",
            "task 'generation' needs a decoder backbone, but model.backbone 'minilm-l6' is an encoder",
        ),
        (
            "classification",
            "smollm2-135m",
            "task 'classification' needs an encoder backbone, but model.backbone 'smollm2-135m' is a decoder",
        ),
    ],
)
def test_task_and_backbone_kind_must_fit(task: str, backbone: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        build_recipe({"task": task, "data": {"path": "d.csv"}, "model": {"backbone": backbone}})


def test_a_local_folder_kind_comes_from_its_config(tmp_path: Path, tiny_backbone: Path) -> None:
    from tests.generation.conftest import save_tiny_llama

    llama = save_tiny_llama(tmp_path / "llama")
    assert folder_kind(llama) == "decoder" and folder_kind(tiny_backbone) == "encoder"
    with pytest.raises(RecipeError, match=f"model.backbone '{llama}' is a decoder"):
        build_recipe({"data": {"path": "d.csv"}, "model": {"backbone": str(llama)}})
    build_recipe(
        {
            "task": "language-modeling",
            "data": {"path": "d.txt"},
            "model": {"backbone": str(tiny_backbone)},
        }
    )


def test_every_registered_backbone_has_a_kind() -> None:
    assert set(BACKBONES.names()) <= set(BACKBONE_KINDS)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"method": "bitfit"}, "trains with train.method full, lora, ia3; got 'bitfit'"),
        ({"early_stopping": {"metric": "accuracy"}}, "early-stops on the dev loss"),
        ({"adversarial": {"method": "fgm"}}, "train.adversarial is for classification runs"),
    ],
)
def test_language_model_runs_refuse_classifier_settings(train: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        build_recipe({"task": "generation", "data": {"path": "d.jsonl"}, "train": train})
