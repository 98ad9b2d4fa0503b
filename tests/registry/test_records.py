"""A run's records: labels.json and recipe.yaml, read as typed values and refused when corrupt."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from modelyard.errors import ArtifactError, ModelyardError
from modelyard.recipe import Recipe, build_recipe
from modelyard.registry import LoadedRun, load_run, read_labels, read_recipe
from modelyard.registry.manifest import write_manifest
from modelyard.registry.records import RECIPE, parse_saved_recipe

SAVED = Path(__file__).parent / "saved_recipes"


def _with_recipe(tmp_path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    (tmp_path / RECIPE).write_bytes(data)
    return tmp_path


def test_read_recipe_is_typed(saved_run: Path) -> None:
    recipe = read_recipe(saved_run)
    assert isinstance(recipe, Recipe)
    assert recipe.model.max_length == 32
    assert recipe.data.path == Path("data.csv") and recipe.data.has_source


def test_loaded_run_carries_the_recipe(saved_run: Path) -> None:
    run = load_run(saved_run)
    assert isinstance(run.recipe, Recipe)
    assert run.max_length == run.recipe.model.max_length == 32


def test_missing_recipe_gives_schema_defaults(tmp_path: Path) -> None:
    recipe = read_recipe(tmp_path)
    assert recipe.model.max_length == Recipe.model_fields["model"].default_factory().max_length
    assert not recipe.data.has_source


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("model: {max_length: abc}", "model.max_length"),
        ("model: [1, 2]", "model"),
        ("model: {max_length: 3}", "model.max_length"),
        ("train: {methd: full}", "unknown key"),
        ("data: !!python/object/apply:os.system [echo pwned]", "not a valid recipe file"),
        ("!!python/name:os.system", "not a valid recipe file"),
        ("- a\n- b\n", "a recipe is a mapping"),
        ("model: {max_length: 64", "not a valid recipe file"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),
        (
            "data:\n  pii:\n    patterns:\n"
            + "".join("  " * (i + 3) + f"k{i}:\n" for i in range(30)),
            "nested deeper",
        ),
    ],
)
def test_corrupt_recipe_is_refused(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ArtifactError, match=says) as caught:
        read_recipe(_with_recipe(tmp_path, text))
    assert str(tmp_path / RECIPE) in str(caught.value)


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    # nine levels of ten aliases: a 1 kB file that expands to a billion values
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("model: {backbone: *a8}")
    with pytest.raises(ArtifactError, match="holds more than"):
        read_recipe(_with_recipe(tmp_path, "\n".join(lines)))


def test_oversized_and_undecodable_recipes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="at most 1 MiB"):
        parse_saved_recipe(b"# " + b"x" * (1 << 20) + b"\n", "big/recipe.yaml")
    with pytest.raises(ArtifactError, match="not a valid recipe file"):
        parse_saved_recipe(b"model: {backbone: \xff\xfe}", "bad/recipe.yaml")


def test_load_run_refuses_a_corrupt_recipe(run_copy: Path) -> None:
    (run_copy / RECIPE).write_text("model: {max_length: abc}\n", encoding="utf-8")
    write_manifest(run_copy)  # signed off as if modelyard wrote it: the schema still refuses it
    with pytest.raises(ModelyardError, match="max_length"):
        load_run(run_copy)


@pytest.mark.parametrize("saved", sorted(SAVED.glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_saved_by_earlier_versions_load(tmp_path: Path, saved: Path) -> None:
    shutil.copyfile(saved, tmp_path / RECIPE)
    recipe = read_recipe(tmp_path)
    assert recipe.run.name == "tickets" and recipe.run.seed == 7
    assert recipe.model.max_length == 64
    assert recipe.data.path == Path("/srv/data/tickets.csv")


def test_saved_self_training_keeps_top_fraction(tmp_path: Path) -> None:
    # the resolved recipe writes threshold beside top_fraction; the run used top_fraction
    recipe = read_recipe(_with_recipe(tmp_path, (SAVED / "580abfe.yaml").read_text()))
    assert recipe.train.self_training is not None
    assert recipe.train.self_training.top_fraction == 0.2


@pytest.mark.parametrize(
    "raw",
    [
        {"data": {"path": "d.csv"}},
        {"data": {"train": "t.csv", "dev": "v.csv"}, "model": {"pooling": "mean"}},
        {"data": {"path": "d.csv"}, "train": {"method": "lora", "lora": {"rank": 4}}},
        {"data": {"path": "d.csv"}, "privacy": {"target_epsilon": 3}, "train": {"method": "lora"}},
        {
            "data": {"path": "d.csv"},
            "train": {"self_training": {"unlabelled": "u.csv", "top_fraction": 0.3}},
        },
        {"task": "generation", "data": {"path": "chats.jsonl"}},
    ],
)
def test_every_resolved_recipe_reads_back_equal(tmp_path: Path, raw: dict) -> None:
    recipe = build_recipe(raw)
    loaded = read_recipe(_with_recipe(tmp_path, recipe.to_yaml()))
    expected = recipe.model_dump(mode="json")
    got = loaded.model_dump(mode="json")
    if expected["train"]["self_training"]:
        expected["train"]["self_training"].pop("threshold")
        got["train"]["self_training"].pop("threshold")
    assert got == expected


def test_read_labels(saved_run: Path, tmp_path: Path) -> None:
    assert read_labels(saved_run) == ["account", "billing", "shipping"]
    (tmp_path / "labels.json").write_text(json.dumps({"a": 1}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="list of label names"):
        read_labels(tmp_path)
    with pytest.raises(ArtifactError, match="cannot be read"):
        read_labels(tmp_path / "nowhere")


def test_private_readers_are_deprecated_aliases(saved_run: Path) -> None:
    from modelyard.registry import run as run_module

    with pytest.warns(DeprecationWarning, match="read_labels"):
        assert run_module._read_labels(saved_run) == read_labels(saved_run)
    with pytest.warns(DeprecationWarning, match="read_recipe"):
        as_dict = run_module._read_recipe(saved_run)
    assert as_dict["model"]["max_length"] == 32


def test_old_loaded_run_signature_still_works(saved_run: Path) -> None:
    run = load_run(saved_run)
    with pytest.warns(DeprecationWarning, match="max_length"):
        old = LoadedRun(run.path, run.model, run.tokenizer, run.labels, 48, run.manifest, {})
    assert isinstance(old.recipe, Recipe) and old.max_length == 48
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = LoadedRun(run.path, run.model, run.tokenizer, run.labels, run.manifest, run.recipe)
    assert new.max_length == 32
    with pytest.raises(TypeError):
        LoadedRun(run.path, run.model, run.tokenizer, run.labels, run.manifest)
