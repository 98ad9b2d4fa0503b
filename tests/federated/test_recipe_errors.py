"""Mistakes in the federated: section or the partition get clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.data import load_data
from modelyard.errors import RecipeError
from modelyard.federated.run import client_shards, with_overrides
from modelyard.recipe import Recipe


def test_lora_only_needs_lora(tiny_recipe: dict) -> None:
    tiny_recipe["federated"] = {"clients": 2}
    with pytest.raises(ValueError, match="set train.method lora or federated.lora_only false"):
        Recipe.model_validate(tiny_recipe)


def test_min_clients_above_clients_is_refused(fed_recipe: Recipe) -> None:
    with pytest.raises(RecipeError, match="exceeds federated.clients"):
        with_overrides(fed_recipe, clients=1, partition=None)


def test_partition_override_and_shards_cover_train(fed_recipe: Recipe) -> None:
    recipe = with_overrides(fed_recipe, clients=3, partition="dirichlet:0.5")
    assert recipe.federated is not None and recipe.federated.partition == "dirichlet:0.5"
    bundle = load_data(recipe.data, recipe.run.seed)
    shards = client_shards(recipe, bundle)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(bundle.train)))


def test_missing_partition_column_names_the_columns(fed_recipe: Recipe) -> None:
    recipe = with_overrides(fed_recipe, clients=3, partition="column:site")
    bundle = load_data(recipe.data, recipe.run.seed)
    with pytest.raises(RecipeError, match="its columns are: text, label"):
        client_shards(recipe, bundle)


def test_column_partition_follows_the_file(fed_recipe: Recipe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    frame = pd.read_csv(fed_recipe.data.path)
    frame["site"] = [f"s{i % 3}" for i in range(len(frame))]
    path = tmp_path / "sites.csv"
    frame.to_csv(path, index=False)
    data = fed_recipe.model_dump(mode="json")
    data["data"]["path"] = str(path)
    recipe = with_overrides(Recipe.model_validate(data), clients=3, partition="column:site")
    bundle = load_data(recipe.data, recipe.run.seed)
    shards = client_shards(recipe, bundle)
    sites = frame["site"].tolist()
    assert bundle.train.rows is not None
    texts = frame["text"].tolist()
    # the row numbers the partition reads the column at are the rows of the training texts
    assert all(
        texts[r - 1] == t for r, t in zip(bundle.train.rows, bundle.train.texts, strict=True)
    )
    for shard in shards:
        assert len({sites[bundle.train.rows[i] - 1] for i in shard}) == 1
    assert sum(len(s) for s in shards) == len(bundle.train)
