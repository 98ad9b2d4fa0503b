"""Everything a run's page shows, read from the run's own files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.registry.manifest import MANIFEST
from modelyard.registry.run import RECIPE
from modelyard.ui.runs import (
    COMPRESSED_SUFFIX,
    HISTORY,
    RunIndex,
    RunSummary,
    read_json,
    read_yaml,
)


@dataclass
class Lineage:
    """Where a run comes from and what was made from it."""

    parent: str | None = None
    parent_ref: str | None = None
    children: list[tuple[str, str]] = field(default_factory=list)  # (name, ref)


@dataclass
class RunDetails:
    """A run's records: summary, recipe, metrics, data report, curves, card, lineage, files."""

    summary: RunSummary
    recipe_text: str
    recipe: dict[str, Any]
    test: dict[str, Any]
    training: dict[str, Any]
    data_report: dict[str, Any]
    model_card: str
    files: dict[str, dict[str, Any]]
    lineage: Lineage
    faithfulness: list[dict[str, Any]] = field(default_factory=list)
    compression: bool = False


def read_history(path: Path, training: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """Return the curves of a run: `loss` as (step, loss) pairs and `dev` as (step, metrics).

    They come from `history.jsonl` (written while the run trains; the last entry of a step
    wins, as a resumed run repeats steps) or, for runs without it, the dev evaluations in
    `metrics.json`.
    """
    loss: dict[int, float | None] = {}
    dev: dict[int, dict[str, float]] = {}
    history = path / HISTORY
    if history.is_file():
        for line in history.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
                continue
            if "loss" in entry:
                loss[entry["step"]] = entry["loss"]
            if isinstance(entry.get("dev"), dict):
                dev[entry["step"]] = entry["dev"]
    if not dev and training:
        for row in training.get("history") or []:
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                dev[row["step"]] = {k: v for k, v in row.items() if k not in ("step", "epoch")}
    return {"loss": sorted(loss.items()), "dev": sorted(dev.items())}


def _lineage(index: RunIndex, summary: RunSummary) -> Lineage:
    lineage = Lineage(parent=summary.parent)
    if summary.parent:
        lineage.parent_ref = index.ref_of(Path(summary.parent))
    compressed = summary.path.parent / f"{summary.path.name}{COMPRESSED_SUFFIX}"
    if compressed.is_dir():
        for child in sorted(compressed.iterdir()):
            ref = index.ref_of(child) if (child / MANIFEST).is_file() else None
            if ref is not None:
                lineage.children.append((child.name, ref))
    return lineage


def _faithfulness(path: Path) -> list[dict[str, Any]]:
    found = []
    folder = path / "explanations"
    if folder.is_dir():
        for report in sorted(folder.glob("*/faithfulness.json")):
            data = read_json(report)
            if isinstance(data, dict):
                found.append({"data": report.parent.name, **data})
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def run_details(index: RunIndex, ref: str) -> RunDetails:
    """Return what the page of run `ref` shows; raise UnknownRunError for an unknown ref."""
    summary = index.summary(ref)
    path = summary.path
    metrics = read_json(path / "metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    manifest = read_json(path / MANIFEST)
    recipe = read_yaml(path / RECIPE)
    report = read_json(path / "data_report.json")
    lineage = _lineage(index, summary)
    return RunDetails(
        summary=summary,
        recipe_text=_read_text(path / RECIPE),
        recipe=recipe if isinstance(recipe, dict) else {},
        test=metrics.get("test", {}) if "test" in metrics else metrics,
        training=metrics.get("training", {}),
        data_report=report if isinstance(report, dict) else {},
        model_card=_read_text(path / "MODEL_CARD.md"),
        files=(manifest or {}).get("files", {}) if isinstance(manifest, dict) else {},
        lineage=lineage,
        faithfulness=_faithfulness(path),
        compression=(path.parent / f"{path.name}{COMPRESSED_SUFFIX}" / "report.json").is_file(),
    )
