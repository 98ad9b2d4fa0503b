"""Save a trained classifier as a run artifact, and load one back after verifying it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors import SafetensorError
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from modelyard.errors import ArtifactError
from modelyard.models.build import load_tokenizer
from modelyard.registry.manifest import verify_manifest

LABELS = "labels.json"
RECIPE = "recipe.yaml"


@dataclass
class LoadedRun:
    """A verified run: model in eval mode, tokenizer, label names and the run's records."""

    path: Path
    model: Any
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    max_length: int
    manifest: dict[str, Any]
    recipe: dict[str, Any]


def save_model_files(
    run_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase, labels: list[str]
) -> None:
    """Write weights (safetensors), config, tokenizer and labels.json into `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(run_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / LABELS).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


def _read_labels(run_dir: Path) -> list[str]:
    try:
        labels = json.loads((run_dir / LABELS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{run_dir / LABELS} cannot be read: {exc}") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ArtifactError(f"{run_dir / LABELS} must be a JSON list of label names")
    return labels


def _read_recipe(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RECIPE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def load_run(path: str | Path, device: str = "cpu") -> LoadedRun:
    """Return the verified run at `path`, ready for inference.

    Raises ArtifactError when the directory is not a finished run, any file differs from
    the manifest, or the weights cannot be loaded.
    """
    run_dir = Path(path)
    manifest = verify_manifest(run_dir)
    if "model.safetensors" not in manifest["files"]:
        raise ArtifactError(f"{run_dir} holds no model.safetensors in its manifest")
    labels = _read_labels(run_dir)
    recipe = _read_recipe(run_dir)
    quiet = logging.getLogger("transformers.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(run_dir), local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the model in {run_dir}: {exc}") from None
    finally:
        quiet.setLevel(level)
    if model.config.num_labels != len(labels):
        raise ArtifactError(
            f"{run_dir}: the model has {model.config.num_labels} outputs but {LABELS} names {len(labels)} labels"
        )
    model.to(device).eval()
    max_length = int(recipe.get("model", {}).get("max_length", 128))
    return LoadedRun(run_dir, model, load_tokenizer(run_dir), labels, max_length, manifest, recipe)
