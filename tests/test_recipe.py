from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import RecipeError
from modelyard.recipe import build_recipe, load_recipe, parse_overrides
from modelyard.templates import RECIPE_TEMPLATE


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_recipe_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, "data:\n  path: data.csv\n"))
    assert recipe.data.path == tmp_path / "data.csv"
    assert recipe.run.name == "recipe"
    assert recipe.model.backbone == "minilm-l6"
    assert recipe.train.lr == 5e-5


def test_overrides_are_typed_and_nested(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, "data: {path: d.csv}\n"),
        ["train.lr=3e-5", "train.epochs=2", "train.early_stopping.patience=null"],
    )
    assert recipe.train.lr == 3e-5
    assert recipe.train.epochs == 2
    assert recipe.train.early_stopping.patience is None


def test_every_problem_is_reported_at_once_with_key_value_and_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "data: {path: d.csv}\ntrain: {lr: -1, batch_sise: 8, precision: fp8}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message
    assert "3 problem(s)" in message
    assert "train.lr" in message and "-1" in message
    assert "train.batch_sise: unknown key" in message and "batch_size" in message
    assert "train.precision" in message and "'fp8'" in message and "bf16" in message


def test_override_of_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"trian: unknown key; allowed keys here: .*train"):
        load_recipe(write(tmp_path, "data: {path: d.csv}\n"), ["trian.lr=1"])


@pytest.mark.parametrize("bad", ["train.lr", "=3", "lr 3"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(RecipeError, match="key.sub=value"):
        parse_overrides([bad])


def test_data_source_rules() -> None:
    with pytest.raises(RecipeError, match=r"data.path \(one file\) or data.train"):
        build_recipe({"data": {}})
    with pytest.raises(RecipeError, match="not both"):
        build_recipe({"data": {"path": "a.csv", "train": "b.csv"}})


def test_split_fractions_must_leave_training_data() -> None:
    with pytest.raises(RecipeError, match="dev \\+ test must be below 0.9"):
        build_recipe({"data": {"path": "a.csv", "split": {"dev": 0.5, "test": 0.45}}})


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found.*modelyard init"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(RecipeError, match="mapping of sections"):
        load_recipe(write(tmp_path, "- a\n- b\n"))


def test_init_template_is_a_valid_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, RECIPE_TEMPLATE))
    assert recipe.run.name == "my-first-run"
    assert recipe.data.path == tmp_path / "data.csv"


def test_init_template_writes_the_default_stopping_rule(tmp_path: Path) -> None:
    from modelyard.recipe import TrainConfig

    written = load_recipe(write(tmp_path, RECIPE_TEMPLATE)).train
    default = TrainConfig()
    for name in ("epochs", "max_epochs", "fallback_epochs", "cooldown", "eval_every"):
        assert getattr(written, name) == getattr(default, name), name
    assert written.early_stopping == default.early_stopping
    assert written.epochs == "auto" and "# max_minutes:" in RECIPE_TEMPLATE


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    import yaml

    recipe = load_recipe(write(tmp_path, "data: {path: d.csv}\n"), ["train.lr=1e-4"])
    again = build_recipe(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe
