"""The recipe reference (docs/recipe.md) is generated from the schema and must stay in step."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from modelyard.recipe import Recipe
from modelyard.recipe import reference as ref

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "recipe.md"


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """Return the pydantic models an annotation holds (directly or in a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in models_in(arg)]


def walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """Yield (key path, section class) of every section under `model`, written independently
    of the module under test so that a section it skipped would be noticed."""
    for name, field in model.model_fields.items():
        for child in models_in(field.annotation):
            yield f"{prefix}{name}", child
            yield from walk(child, f"{prefix}{name}.")


SECTIONS = list(walk(Recipe))


def test_the_committed_reference_is_up_to_date() -> None:
    assert COMMITTED.is_file(), f"docs/recipe.md is missing; create it with: {ref.REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == ref.render_reference(), (
        "docs/recipe.md is stale (the recipe schema changed); regenerate it from the repository "
        f"root with: {ref.REGENERATE}"
    )


def test_the_walk_finds_the_known_sections() -> None:
    paths = {path for path, _ in SECTIONS}
    assert {"run", "data", "data.split", "train.lora", "compress.distill", "privacy"} <= paths
    assert {"audit", "model.head_init", "train.self_training"} <= paths


@pytest.mark.parametrize(("path", "model"), [(p, m) for p, m in [("", Recipe), *SECTIONS]])
def test_every_field_has_a_description(path: str, model: type[BaseModel]) -> None:
    missing = [name for name, f in model.model_fields.items() if not (f.description or "").strip()]
    where = path or "the recipe root"
    assert not missing, f"{where} ({model.__name__}): fields without a description: {missing}"


@pytest.mark.parametrize(("path", "model"), SECTIONS)
def test_every_section_has_a_docstring(path: str, model: type[BaseModel]) -> None:
    assert inspect.cleandoc(model.__doc__ or ""), f"{path} ({model.__name__}) has no docstring"


def test_every_section_and_key_appears() -> None:
    text = ref.render_reference()
    headings = {line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("#")}
    for path, model in SECTIONS:
        assert f"`{path}`" in headings, f"no heading for section {path}"
        for name in model.model_fields:
            assert f"| `{path}.{name}` |" in text, f"no row for {path}.{name}"


def row(key: str) -> list[str]:
    """Return the cells of the table row of `key` in the rendered reference."""
    for line in ref.render_reference().splitlines():
        if line.startswith(f"| `{key}` |"):
            return [c.strip() for c in line.strip("|").split(" | ")]
    raise AssertionError(f"no row for {key}")


def test_rows_show_type_default_constraints_and_choices() -> None:
    assert row("train.lr")[1:4] == ["number", "`5e-05`", "> 0; <= 10"]
    assert row("model.pooling")[1:4] == ["string", "`cls`", "one of `cls`, `mean`"]
    assert row("privacy.target_epsilon")[2] == "required"
    assert row("privacy.delta")[1] == "number or `auto`"
    assert row("data.max_rows")[1:4] == ["integer or null", "`null`", "> 0"]
    assert row("data.pii.region")[3] == "exactly 2 characters"
    assert row("explain.top_k_percent")[3] == "at least 1 item; each > 0; each <= 100"
    assert row("data.augment.operations")[2] == "`[swap, delete, insert, synonym]`"
    assert row("data.split")[1:3] == ["section", "see its table"]
    assert "(#datasplit)" in row("data.split")[4]


def test_optional_sections_say_they_are_off_by_default() -> None:
    text = ref.render_reference()
    privacy = text.split("## `privacy`", 1)[1]
    assert privacy.split("|", 1)[0].count("Optional: off (`null`)") == 1


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "docs" / "recipe.md"
    assert ref.main(["--check", str(out)]) == 1  # missing counts as stale
    assert ref.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == ref.render_reference()
    assert ref.main(["--check", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    assert ref.main(["--check", str(out)]) == 1
    assert ref.REGENERATE in capsys.readouterr().err


def test_the_generator_imports_only_the_recipe_layer() -> None:
    tree = ast.parse(Path(ref.__file__).read_text(encoding="utf-8"))
    modules = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    own = [m for m in modules if m and m.startswith("modelyard")]
    assert own and all(m.startswith("modelyard.recipe") for m in own), own
