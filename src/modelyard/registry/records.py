"""A run's records: its label names (labels.json) and its recipe (recipe.yaml), read and validated.

A saved recipe is validated with the same typed schema as a user's recipe
(`modelyard.recipe.Recipe`), so code that reads a run reads typed attributes and every default
lives in the schema alone. What earlier versions saved that today's schema would refuse is
migrated first (see `migrate_saved_recipe`); what is corrupt or hostile is refused with an
ArtifactError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modelyard.errors import ArtifactError, RecipeError
from modelyard.recipe import Recipe
from modelyard.recipe.loading import validate_saved_recipe

LABELS = "labels.json"
RECIPE = "recipe.yaml"

# a saved recipe is a few kB; these bounds refuse a hostile file before it costs memory or time
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_DEPTH = 12
MAX_RECIPE_NODES = 20_000


def read_labels(run_dir: str | Path) -> list[str]:
    """Return the label names of the run at `run_dir`, in output order.

    Raises ArtifactError when labels.json is missing, not JSON, or not a list of strings.
    """
    path = Path(run_dir) / LABELS
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    return check_labels(labels, path)


def check_labels(labels: object, source: str | Path) -> list[str]:
    """Return `labels` when it is a list of label names; raise ArtifactError naming `source` if not."""
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ArtifactError(f"{source} must be a JSON list of label names")
    return labels


def read_recipe(run_dir: str | Path) -> Recipe:
    """Return the validated recipe the run at `run_dir` was trained with.

    A run without recipe.yaml (none of modelyard's own) gets the schema's defaults and no
    data source. Raises ArtifactError when the file is unreadable, not YAML, too large or
    too deeply nested, or does not fit the recipe schema.
    """
    path = Path(run_dir) / RECIPE
    if not path.is_file():
        return parse_saved_recipe(b"", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    return parse_saved_recipe(data, path)


def parse_saved_recipe(data: bytes, source: str | Path) -> Recipe:
    """Return the Recipe in the saved recipe.yaml bytes `data` (empty: the defaults).

    Raises ArtifactError naming `source` when the bytes are not a bounded YAML mapping or do
    not fit the recipe schema.
    """
    if len(data) > MAX_RECIPE_BYTES:
        raise ArtifactError(f"{source}: {len(data)} bytes; a run's recipe is at most 1 MiB")
    try:
        raw = yaml.safe_load(data.decode("utf-8")) if data.strip() else {}
    except RecursionError:
        raise ArtifactError(_too_large(source)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{source} is not a valid recipe file: {_first_line(exc)}") from None
    return saved_recipe_from_dict(raw, source)


def saved_recipe_from_dict(raw: object, source: str | Path) -> Recipe:
    """Return the Recipe a run saved, from its parsed YAML `raw` (migrated, then validated).

    Raises ArtifactError naming `source` when `raw` is not a bounded mapping that fits the
    recipe schema.
    """
    if not isinstance(raw, dict):
        raise ArtifactError(
            f"{source}: a recipe is a mapping of sections (data, model, train, ...), "
            f"got {type(raw).__name__}"
        )
    _check_size(raw, source)
    try:
        return validate_saved_recipe(migrate_saved_recipe(raw), str(source))
    except RecipeError as exc:
        raise ArtifactError(
            f"{exc}\n(modelyard writes a run's recipe.yaml: was it edited by hand, or saved by a "
            "newer version?)"
        ) from None


def migrate_saved_recipe(raw: dict[str, Any]) -> dict[str, Any]:
    """Return a saved recipe rewritten to today's schema (`raw` is not changed).

    Runs save their resolved recipe, every default written out. Each rule below turns what an
    earlier version wrote, and today's schema would refuse, into what it means now.
    """
    migrated = dict(raw)
    if migrated.get("data") is None:
        migrated["data"] = {}  # a run without a data source (hand-made, or saved by 0.1.0 tests)
    train = migrated.get("train")
    if isinstance(train, dict) and isinstance(train.get("self_training"), dict):
        selftrain = train["self_training"]
        if selftrain.get("top_fraction") is not None:
            # the resolved recipe writes the default threshold beside top_fraction, which a
            # user's recipe may not combine: top_fraction is what the run used
            selftrain = {k: v for k, v in selftrain.items() if k != "threshold"}
            migrated["train"] = {**train, "self_training": selftrain}
    return migrated


def _check_size(raw: object, source: str | Path) -> None:
    # YAML aliases can make a small file a huge tree: count nodes the way validation walks them
    stack: list[tuple[object, int]] = [(raw, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_RECIPE_DEPTH or nodes > MAX_RECIPE_NODES:
            raise ArtifactError(_too_large(source))
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _too_large(source: str | Path) -> str:
    return (
        f"{source} is nested deeper than {MAX_RECIPE_DEPTH} levels or holds more than "
        f"{MAX_RECIPE_NODES} values; it is not a recipe modelyard wrote"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
