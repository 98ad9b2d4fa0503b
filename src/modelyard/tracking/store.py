"""The local tracking store: a run folder read back as parameters, metrics, steps, artifacts.

Nothing is copied: the train stage already writes everything a tracker keeps into the run
folder. Parameters are the saved recipe's leaves (`train.lr`), final metrics the numeric
leaves of `metrics.json` (`test.accuracy`, `training.steps`), steps the entries of
`history.jsonl` (`train.loss` after each optimizer step, `dev.<metric>` after each dev
evaluation; a resumed run repeats steps and the last entry of a step wins).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelyard.tracking.errors import TrackingError

RECIPE, METRICS, HISTORY = "recipe.yaml", "metrics.json", "history.jsonl"
# the weights stay in the run folder: trackers get the reports and small files
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".gguf")
MAX_ARTIFACT_BYTES = 10 * 1024**2


@dataclass(frozen=True)
class Step:
    """One measured value: a metric at an optimizer step, with the Unix time (s) it was taken."""

    key: str
    value: float
    step: int
    time: float


@dataclass
class TrackedRun:
    """A run as a tracker sees it."""

    path: Path
    params: dict[str, str]
    metrics: dict[str, float]
    steps: list[Step] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Return the leaves of nested dicts as `{"a.b.c": value}` (lists stay whole)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def _number(value: Any) -> float | None:
    """Return `value` as a finite float, or None for text, booleans, lists and NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Return the finite numeric leaves of a `metrics.json` tree, by dotted key."""
    flat = flatten(metrics)
    return {k: n for k, v in flat.items() if (n := _number(v)) is not None}


def read_steps(path: Path) -> list[Step]:
    """Return the per-step values of a `history.jsonl` file (none when it is missing).

    Raises TrackingError for a line that is not JSON.
    """
    if not path.is_file():
        return []
    latest: dict[tuple[str, int], Step] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise TrackingError(f"{path}:{number} is not a JSON line") from None
        step, when = int(entry.get("step", 0)), float(entry.get("time") or 0.0)
        values = {"train.loss": entry.get("loss")}
        values.update({f"dev.{k}": v for k, v in (entry.get("dev") or {}).items()})
        for key, value in values.items():
            if (n := _number(value)) is not None:
                latest[(key, step)] = Step(key, n, step, when)
    return sorted(latest.values(), key=lambda s: (s.step, s.key))


def artifacts(run_dir: Path) -> list[Path]:
    """Return the run's top-level files a tracker keeps: everything but weights and big files."""
    return [
        p
        for p in sorted(run_dir.iterdir())
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix not in WEIGHT_SUFFIXES
        and p.stat().st_size <= MAX_ARTIFACT_BYTES
    ]


def read_tracked(run_dir: str | Path) -> TrackedRun:
    """Return the run folder's parameters, final metrics, per-step values and artifacts.

    Raises TrackingError when the folder holds no saved recipe (it is not a run).
    """
    path = Path(run_dir)
    recipe_path = path / RECIPE
    if not recipe_path.is_file():
        raise TrackingError(
            f"{path} is not a run folder (no {RECIPE}); give a folder `modelyard train` wrote"
        )
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}
    params = {k: _param(v) for k, v in flatten(recipe).items()}
    metrics_path = path / METRICS
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        metrics = {}  # a run still training, or one that stopped before its evaluation
    except ValueError:
        raise TrackingError(f"{metrics_path} is not valid JSON") from None
    return TrackedRun(
        path, params, final_metrics(metrics), read_steps(path / HISTORY), artifacts(path)
    )


def compare_runs(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Return what differs between two runs: the parameters that differ, and every final
    metric of either with its value in each and the difference (b minus a).

    Raises TrackingError when either folder is not a run.
    """
    left, right = read_tracked(a), read_tracked(b)
    keys = sorted(set(left.params) | set(right.params))
    params = [
        {"key": k, "a": left.params.get(k), "b": right.params.get(k)}
        for k in keys
        if left.params.get(k) != right.params.get(k) and k not in ("run.name", "run.output_dir")
    ]
    metrics = []
    for key in sorted(set(left.metrics) | set(right.metrics)):
        va, vb = left.metrics.get(key), right.metrics.get(key)
        delta = vb - va if va is not None and vb is not None else None
        metrics.append({"key": key, "a": va, "b": vb, "delta": delta})
    return {"a": str(left.path), "b": str(right.path), "params": params, "metrics": metrics}
