"""The fine-tuning loop: optimizer choice, step observers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modelyard.data.splits import Split
from modelyard.errors import RecipeError
from modelyard.recipe import build_recipe
from modelyard.trainer.loop import FineTuner, make_optimizer, steps_per_epoch
from tests.conftest import make_rows


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


def test_observers_see_every_optimizer_step_and_training_stays_in_train_mode(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    from modelyard.methods.session import build_task_model
    from modelyard.models import load_tokenizer
    from modelyard.models.encoding import Encoded, encode_split

    rows = make_rows(40, seed=1)
    names = sorted({label for _, label in rows})
    split = Split([t for t, _ in rows], [names.index(label) for _, label in rows])
    train = encode_split(load_tokenizer(tiny_backbone), split, 32)
    cfg = build_recipe(
        {"data": {"path": "x.csv"}, "train": {"epochs": 2, "batch_size": 8, "grad_accum": 2}}
    ).train
    seen: list[int] = []
    modes: list[bool] = []

    class Observer:
        def after_step(self, model: torch.nn.Module, step: int) -> None:
            seen.append(step)
            model.eval()  # as a prediction pass leaves it

    class ModeSpy:
        def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
            modes.append(model.training)
            return loss

        def after_backward(self, model: torch.nn.Module, compute_loss: Any, accum: int) -> None:
            return None

    model = build_task_model(tiny_backbone, names, "cls")
    spies = {"hooks": [ModeSpy()], "observers": [Observer()]}
    tuner = FineTuner(model, cfg, torch.device("cpu"), None, 0, 0, tmp_path, False, **spies)
    result = tuner.fit(train, Encoded([], None, [], 0))
    assert steps_per_epoch(40, cfg) == 3  # 5 batches of 8, two per step
    assert result.steps == 6 and seen == [1, 2, 3, 4, 5, 6]
    assert len(modes) == 10 and all(modes)  # dropout stays on after every observer
