"""One run folder summarised from its own files (manifest, metrics, recipe): what
`modelyard runs list` and the dashboard's run list show.

A run is a folder holding `recipe.yaml` (training started) or `manifest.json` (a finished
artifact).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelyard.errors import ModelyardError
from modelyard.recipe import Recipe
from modelyard.registry.manifest import MANIFEST, parent_of
from modelyard.registry.records import RECIPE, read_recipe

HISTORY = "history.jsonl"  # written by modelyard.pipeline.HistoryWriter while a run trains
# a run without a manifest whose history changed this recently is still training
LIVE_WINDOW_S = 120.0


@dataclass
class RunSummary:
    """What the run list shows of one run."""

    ref: str
    path: Path
    name: str
    source: str
    kind: str
    task: str
    method: str
    dataset: str
    created: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str | None = None


def read_json(path: Path) -> Any:
    """Return the parsed JSON file at `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_yaml(path: Path) -> Any:
    """Return the parsed YAML file at `path`, or None when it is missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def task_of(kind: str) -> str:
    """Return the task an artifact kind serves: classification, or the kind itself."""
    return "classification" if "classifier" in kind else kind


def run_recipe(path: Path) -> Recipe | None:
    """Return the validated recipe of the run folder `path`, or None when it has none or a
    corrupt one (the dashboard still lists the run)."""
    if not (path / RECIPE).is_file():
        return None
    try:
        return read_recipe(path)
    except ModelyardError:
        return None


def _dataset(recipe: Recipe | None) -> str:
    source = recipe and (recipe.data.path or recipe.data.train)
    return source.name if source else ""


def _status(path: Path, manifest: Any) -> str:
    if isinstance(manifest, dict):
        return "finished"
    try:
        age = time.time() - (path / HISTORY).stat().st_mtime
    except OSError:
        return "stopped"
    return "training" if age < LIVE_WINDOW_S else "stopped"


def summarise(ref: str, path: Path, source: str) -> RunSummary:
    """Return the summary of the run folder `path` from its manifest, metrics and recipe."""
    manifest = read_json(path / MANIFEST)
    manifest = manifest if isinstance(manifest, dict) else None
    recipe = run_recipe(path)
    metrics = read_json(path / "metrics.json")
    test = metrics.get("test", metrics) if isinstance(metrics, dict) else {}
    kind = str((manifest or {}).get("kind", "classifier"))
    compressed = read_json(path / "compression.json")  # a compressed variant names its method
    method = ((compressed or {}).get("method") if isinstance(compressed, dict) else None) or (
        (manifest or {}).get("method") or (recipe.train.method if recipe else "")
    )
    created = str((manifest or {}).get("created", ""))
    if not created:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(path.stat().st_mtime))
    figures = {
        k: float(test[k])
        for k in ("accuracy", "macro_f1", "ece", "latency_p50_ms")
        if isinstance(test, dict) and isinstance(test.get(k), int | float)
    }
    return RunSummary(
        ref=ref,
        path=path,
        name=recipe.run.name if recipe else path.name,
        source=source,
        kind=kind,
        task=task_of(kind),
        method=str(method),
        dataset=_dataset(recipe),
        created=created,
        status=_status(path, manifest),
        metrics=figures,
        parent=_parent(path, manifest),
    )


def _parent(path: Path, manifest: dict[str, Any] | None) -> str | None:
    parent = parent_of(path, manifest or {})
    return str(parent) if parent is not None else (manifest or {}).get("continued_from")


def is_run_dir(path: Path) -> bool:
    """Return True when `path` is a folder holding a recipe or a manifest."""
    return path.is_dir() and ((path / RECIPE).is_file() or (path / MANIFEST).is_file())
