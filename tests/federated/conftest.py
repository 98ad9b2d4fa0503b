"""Fixtures of the federated tests: a LoRA recipe over the tiny backbone."""

from __future__ import annotations

import pytest

from modelyard.recipe import Recipe


@pytest.fixture()
def fed_recipe(tiny_recipe: dict) -> Recipe:
    """A recipe for 3 clients, 2 rounds, LoRA on the tiny backbone."""
    tiny_recipe["train"].update(method="lora", lr=1e-2, checkpoint_every=None)
    tiny_recipe["evaluate"] = {"speed": False}
    tiny_recipe["federated"] = {"clients": 3, "rounds": 2, "min_clients": 2, "local_epochs": 1}
    return Recipe.model_validate(tiny_recipe)
