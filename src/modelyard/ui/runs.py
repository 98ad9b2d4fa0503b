"""The runs the dashboard shows: run folders under the runs root and registry versions.

A run is a folder holding `recipe.yaml` (training started) or `manifest.json` (a finished
artifact). Summaries are read from the run's own files (manifest, metrics, recipe) and kept
in memory until one of those files changes, so a list of hundreds of runs is quick to show.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelyard.errors import ModelyardError
from modelyard.recipe import Recipe
from modelyard.registry.manifest import MANIFEST
from modelyard.registry.records import RECIPE, read_recipe
from modelyard.registry.store import ModelStore, RegistryError

REGISTRY_PREFIX = "registry:"
HISTORY = "history.jsonl"  # written by modelyard.pipeline.HistoryWriter while a run trains
COMPRESSED_SUFFIX = "-compressed"
# a run without a manifest whose history changed this recently is still training
LIVE_WINDOW_S = 120.0
_WATCHED = (MANIFEST, "metrics.json", RECIPE, HISTORY)


class UnknownRunError(ModelyardError):
    """The dashboard was asked for a run that is not under its runs root or registry."""


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
        parent=(manifest or {}).get("parent") or (manifest or {}).get("continued_from"),
    )


def is_run_dir(path: Path) -> bool:
    """Return True when `path` is a folder holding a recipe or a manifest."""
    return path.is_dir() and ((path / RECIPE).is_file() or (path / MANIFEST).is_file())


class RunIndex:
    """The runs under `root` and in the registry at `registry`, summarised and cached."""

    def __init__(self, root: Path, registry: Path | None = None) -> None:
        self.root = root
        self.store = ModelStore(registry) if registry is not None else None
        self._cache: dict[Path, tuple[tuple[int, ...], RunSummary]] = {}
        self._lock = threading.Lock()

    def _stamp(self, path: Path) -> tuple[int, ...]:
        stamp = []
        for name in _WATCHED:
            try:
                stamp.append(os.stat(path / name).st_mtime_ns)
            except OSError:
                stamp.append(0)
        return tuple(stamp)

    def _summary(self, ref: str, path: Path, source: str) -> RunSummary:
        stamp = self._stamp(path)
        with self._lock:
            hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp and hit[1].status != "training":
            return hit[1]
        summary = summarise(ref, path, source)
        with self._lock:
            self._cache[path] = (stamp, summary)
        return summary

    def _folder_runs(self) -> Iterable[tuple[str, Path]]:
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            if is_run_dir(entry):
                yield entry.name, entry

    def _registry_runs(self) -> Iterable[tuple[str, Path]]:
        if self.store is None:
            return
        for name in self.store.names():
            for version in self.store.versions(name):
                path = self.store.root / name / "versions" / str(version)
                yield f"{REGISTRY_PREFIX}{name}:{version}", path

    def all(self) -> list[RunSummary]:
        """Return every run folder under the root and every registry version, newest first."""
        found = [self._summary(ref, path, "runs") for ref, path in self._folder_runs()]
        found += [self._summary(ref, path, "registry") for ref, path in self._registry_runs()]
        return sorted(found, key=lambda r: r.created, reverse=True)

    def resolve(self, ref: str) -> Path:
        """Return the folder of the run `ref` names (a path under the root, or `registry:NAME:V`).

        Raises UnknownRunError for a ref outside the root, or one that names no run.
        """
        if ref.startswith(REGISTRY_PREFIX):
            if self.store is None:
                raise UnknownRunError(f"no registry is configured; cannot show {ref}")
            try:
                return self.store.resolve(ref.removeprefix(REGISTRY_PREFIX)).path
            except RegistryError as exc:
                raise UnknownRunError(str(exc)) from None
        root = self.root.resolve()
        path = (root / ref).resolve()
        if not path.is_relative_to(root) or path == root or not is_run_dir(path):
            raise UnknownRunError(f"no run '{ref}' under {self.root}")
        return path

    def summary(self, ref: str) -> RunSummary:
        """Return the summary of the run `ref` names; raise UnknownRunError as `resolve` does."""
        path = self.resolve(ref)
        return self._summary(ref, path, "registry" if ref.startswith(REGISTRY_PREFIX) else "runs")

    def ref_of(self, path: Path) -> str | None:
        """Return the ref of a run folder under the root (None when it lies elsewhere)."""
        try:
            rel = path.resolve().relative_to(self.root.resolve())
        except (ValueError, OSError):
            return None
        return rel.as_posix() if is_run_dir(path) else None


SORT_KEYS = ("created", "name", "task", "method", "dataset", "accuracy", "macro_f1", "ece")


def filter_runs(runs: list[RunSummary], query: dict[str, str]) -> list[RunSummary]:
    """Return the runs matching the query's task, method, dataset, status and text filters,
    sorted by its `sort` key (`order` asc or desc)."""
    picked = [
        r
        for r in runs
        if all(
            not query.get(key) or getattr(r, key) == query[key]
            for key in ("task", "method", "dataset", "status", "source")
        )
        and (not query.get("q") or query["q"].lower() in r.name.lower())
    ]
    key = query.get("sort") or "created"
    key = key if key in SORT_KEYS else "created"
    descending = query.get("order", "desc" if key in ("created", "accuracy", "macro_f1") else "asc")

    def value(run: RunSummary) -> tuple[bool, Any]:
        raw = run.metrics.get(key) if key in ("accuracy", "macro_f1", "ece") else getattr(run, key)
        return (raw is None, raw if raw is not None else 0)

    ordered = sorted(picked, key=value, reverse=descending == "desc")
    if descending == "desc":  # runs without the figure go last either way
        ordered = [r for r in ordered if value(r)[0] is False] + [r for r in ordered if value(r)[0]]
    return ordered
