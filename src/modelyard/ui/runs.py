"""The runs the dashboard shows: run folders under the runs root and registry versions.

A run is a folder holding `recipe.yaml` (training started) or `manifest.json` (a finished
artifact). Summaries are read from the run's own files (manifest, metrics, recipe) and kept
in memory until one of those files changes, so a list of hundreds of runs is quick to show.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelyard.errors import ModelyardError
from modelyard.registry.manifest import MANIFEST
from modelyard.registry.records import RECIPE
from modelyard.registry.store import ModelStore, RegistryError
from modelyard.registry.summary import HISTORY as HISTORY
from modelyard.registry.summary import LIVE_WINDOW_S as LIVE_WINDOW_S
from modelyard.registry.summary import RunSummary as RunSummary
from modelyard.registry.summary import is_run_dir as is_run_dir
from modelyard.registry.summary import read_json as read_json
from modelyard.registry.summary import read_yaml as read_yaml
from modelyard.registry.summary import run_recipe as run_recipe
from modelyard.registry.summary import summarise as summarise
from modelyard.registry.summary import task_of as task_of

REGISTRY_PREFIX = "registry:"
COMPRESSED_SUFFIX = "-compressed"
_WATCHED = (MANIFEST, "metrics.json", RECIPE, HISTORY)


class UnknownRunError(ModelyardError):
    """The dashboard was asked for a run that is not under its runs root or registry."""


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
