"""The fine-tuning loop's optimizer choice."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import RecipeError
from modelyard.recipe import build_recipe
from modelyard.trainer.loop import make_optimizer


def _model() -> torch.nn.Module:
    model = torch.nn.Module()
    model.dense = torch.nn.Linear(4, 3)
    model.LayerNorm = torch.nn.LayerNorm(3)  # named as in BERT
    model.dense.bias.requires_grad_(False)  # frozen parameters are left out
    return model


def test_default_is_adamw_without_decay_on_norms_and_biases() -> None:
    recipe = build_recipe({"data": {"path": "d.csv"}, "train": {"weight_decay": 0.1}})
    optimizer = make_optimizer(_model(), recipe.train)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and len(decay["params"]) == 1  # the linear weight
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 2  # the norm's two


def test_sgd_with_momentum_and_a_large_learning_rate() -> None:
    recipe = build_recipe(
        {"data": {"path": "d.csv"}, "train": {"optimizer": "sgd", "lr": 0.5, "momentum": 0.8}}
    )
    optimizer = make_optimizer(_model(), recipe.train)
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(g["lr"] == 0.5 and g["momentum"] == 0.8 for g in optimizer.param_groups)


def test_unknown_optimizer_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"train.optimizer.*'adamw' or 'sgd'"):
        build_recipe({"data": {"path": "d.csv"}, "train": {"optimizer": "lion"}})
