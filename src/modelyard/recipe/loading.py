"""Reading a recipe: YAML files, dotted overrides, and one error listing every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from modelyard.errors import RecipeError
from modelyard.recipe.base import SAVED_RUN
from modelyard.recipe.root import Recipe


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Return a nested dict from `key.sub=value` strings; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    bad = [o for o in overrides if "=" not in o or not o.split("=", 1)[0].strip()]
    if bad:
        raise RecipeError(
            "overrides must look like key.sub=value (e.g. train.lr=3e-5); got: " + ", ".join(bad)
        )
    for item in overrides:
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override '{item}' conflicts with another override of '{part}'")
            node = child
        node[parts[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `extra`, merging nested dicts instead of replacing them."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        # an optional section (`X | None`) lists the keys of X
        models = [
            a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        annotation = models[0] if len(models) == 1 else annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """Return one line per problem: source, key path, what is wrong, the value given."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the recipe:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - {key}: unknown key{hint}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        given = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        lines.append(f"  - {key}: {msg}{given}")
    return "\n".join(lines)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("path", "train", "dev", "test"):
            value = data.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                data[key] = str(base / value)
    train = raw.get("train")
    selftrain = train.get("self_training") if isinstance(train, dict) else None
    unlabelled = selftrain.get("unlabelled") if isinstance(selftrain, dict) else None
    if isinstance(unlabelled, str) and not Path(unlabelled).is_absolute():
        selftrain["unlabelled"] = str(base / unlabelled)  # type: ignore[index]
    return raw


def build_recipe(
    raw: dict[str, Any], source: str = "recipe", overrides: list[str] | None = None
) -> Recipe:
    """Return a validated Recipe from a dict plus overrides; raise RecipeError listing every problem."""
    merged = deep_merge(raw, parse_overrides(overrides or []))
    try:
        return Recipe.model_validate(merged)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source)) from None


def validate_saved_recipe(raw: dict[str, Any], source: str) -> Recipe:
    """Return the validated Recipe a finished run saved; raise RecipeError listing every problem.

    The schema is the user's, with one allowance: a saved run may record no data source
    (`DataConfig.has_source` is then False). Reading and migrating the file is the artifact
    layer's job (`modelyard.registry.read_recipe`).
    """
    try:
        return Recipe.model_validate(raw, context={SAVED_RUN: True})
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Return the Recipe in a YAML file, with overrides applied and data paths made absolute.

    Raises RecipeError when the file is missing, not YAML, or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path} (create one with `modelyard init DIR`)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (data, model, train, ...)")
    raw.setdefault("run", {})
    if isinstance(raw["run"], dict):
        raw["run"].setdefault("name", path.stem)
        out = raw["run"].get("output_dir")
        if isinstance(out, str) and not Path(out).is_absolute():
            raw["run"]["output_dir"] = str(path.parent / out)
    # paths in the file are relative to the file; paths in overrides to the working directory
    return build_recipe(_resolve_paths(raw, path.parent), str(path), overrides)
