"""model.head_init: a mean-pooled head that starts as the zero-shot classifier of label descriptions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelyard
from modelyard.errors import DataError, RecipeError
from modelyard.methods.embedding import build_embedding_classifier
from modelyard.methods.zeroshot import init_head, zeroshot_model
from modelyard.recipe import build_recipe
from tests.conftest import make_rows
from tests.methods.conftest import with_train

DESCRIPTIONS = {
    "account": ["password login email"],
    "billing": ["invoice refund payment", "charged twice on my card"],
    "shipping": "parcel delivery courier tracking",
}
LABELS = sorted(DESCRIPTIONS)


def _mean_recipe(method_recipe: dict, head_init: dict | None) -> dict:
    model = {**method_recipe["model"], "pooling": "mean", "head_init": head_init}
    return {**method_recipe, "model": model}


def test_the_head_equals_the_zeroshot_head(method_recipe: dict, tiny_backbone: Path) -> None:
    recipe = build_recipe(_mean_recipe(method_recipe, {"descriptions": DESCRIPTIONS}))
    model = build_embedding_classifier(tiny_backbone, LABELS)
    init_head(model, tiny_backbone, LABELS, recipe)
    listed = {k: [v] if isinstance(v, str) else v for k, v in DESCRIPTIONS.items()}
    reference, _, labels = zeroshot_model(listed, str(tiny_backbone), 32, 0.05)
    assert labels == LABELS
    assert torch.allclose(model.head.weight, reference.head.weight, atol=1e-5)
    assert torch.count_nonzero(model.head.bias) == 0
    assert model.training


def test_label_names_are_the_default_descriptions(method_recipe: dict, tiny_backbone: Path) -> None:
    recipe = build_recipe(_mean_recipe(method_recipe, {"temperature": 0.1}))
    model = build_embedding_classifier(tiny_backbone, LABELS)
    init_head(model, tiny_backbone, LABELS, recipe)
    reference, _, _ = zeroshot_model({k: [k] for k in LABELS}, str(tiny_backbone), 32, 0.1)
    assert torch.allclose(model.head.weight, reference.head.weight, atol=1e-5)
    # unit rows scaled by 1 / temperature
    assert torch.allclose(model.head.weight.norm(dim=1), torch.full((3,), 10.0), atol=1e-4)


def test_a_trained_run_starts_from_the_zeroshot_head(
    method_recipe: dict, tiny_backbone: Path, tmp_path: Path
) -> None:
    """One step at a vanishing learning rate leaves the zero-shot classifier's predictions."""
    raw = with_train(
        _mean_recipe(method_recipe, {"descriptions": DESCRIPTIONS}),
        method="lora",
        lr=1e-12,
        max_steps=1,
    )
    result = modelyard.train(build_recipe(raw), progress=False)
    listed = {k: [v] if isinstance(v, str) else v for k, v in DESCRIPTIONS.items()}
    reference, tokenizer, labels = zeroshot_model(listed, str(tiny_backbone), 32, 0.05)
    texts = [text for text, _ in make_rows(12, seed=5)]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).logits.argmax(-1).tolist()
    predicted = [p["label"] for p in modelyard.predict(result.run_dir, texts)]
    assert predicted == [labels[i] for i in expected]


def test_head_init_needs_mean_pooling(method_recipe: dict) -> None:
    raw = {**method_recipe, "model": {**method_recipe["model"], "head_init": {}}}
    with pytest.raises(RecipeError, match="head_init needs model.pooling mean"):
        build_recipe(raw)


@pytest.mark.parametrize("empty", ["  ", [], ["a login", ""]])
def test_an_empty_description_is_a_recipe_error(method_recipe: dict, empty: object) -> None:
    with pytest.raises(RecipeError, match="empty descriptions for \\['account'\\]"):
        build_recipe(
            _mean_recipe(method_recipe, {"descriptions": {**DESCRIPTIONS, "account": empty}})
        )


@pytest.mark.parametrize("temperature", [0, -1])
def test_a_bad_temperature_is_a_recipe_error(method_recipe: dict, temperature: float) -> None:
    with pytest.raises(RecipeError, match="temperature"):
        build_recipe(_mean_recipe(method_recipe, {"temperature": temperature}))


@pytest.mark.parametrize(
    ("descriptions", "expected"),
    [
        ({**DESCRIPTIONS, "refunds": "money back"}, "does not have: \\['refunds'\\]"),
        ({"account": "login", "billing": "invoice"}, "missing for \\['shipping'\\]"),
    ],
)
def test_descriptions_that_do_not_fit_the_labels_are_named(
    method_recipe: dict, tiny_backbone: Path, descriptions: dict, expected: str
) -> None:
    raw = _mean_recipe(method_recipe, {"descriptions": descriptions})
    with pytest.raises(DataError, match=expected):
        modelyard.train(build_recipe(raw), progress=False)
    # nothing is left behind by a run that failed before training
    assert not (Path(raw["run"]["output_dir"]) / raw["run"]["name"]).exists()
