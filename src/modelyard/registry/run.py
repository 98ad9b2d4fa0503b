"""Save a trained classifier as a run artifact, and load one back after verifying it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors import SafetensorError
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from modelyard.errors import ArtifactError
from modelyard.models.build import load_tokenizer, quiet_transformers
from modelyard.registry.crypto import EncryptionKey, is_encrypted
from modelyard.registry.kinds import ARTIFACT_KINDS, resolve
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.safety import check_weights
from modelyard.registry.signing import enforce_trust

LABELS = "labels.json"
RECIPE = "recipe.yaml"


def loads_as_torch_run(kind: str) -> bool:
    """Return True when `load_run` loads artifacts of `kind` as a PyTorch model."""
    return kind in ARTIFACT_KINDS and ARTIFACT_KINDS[kind].loads_as_torch_run


def _run_loader(run_dir: Path, kind: str) -> Callable[[Path, dict[str, Any], str], LoadedRun]:
    spec = ARTIFACT_KINDS.get(kind)
    if spec is None or spec.loader is None:
        loadable = [k.name for k in ARTIFACT_KINDS.values() if k.loads_as_torch_run]
        raise ArtifactError(
            f"{run_dir}: artifact kind '{kind}' cannot be loaded as a PyTorch run; loadable kinds: "
            f"{', '.join(loadable)}"
        )
    loader: Callable[[Path, dict[str, Any], str], LoadedRun] = resolve(spec.loader)
    return loader


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
    with quiet_transformers():
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


def load_run(
    path: str | Path,
    device: str = "cpu",
    *,
    trusted_keys: list[str | Path] | None = None,
    require_signature: bool = False,
    key: EncryptionKey | str | Path | None = None,
) -> LoadedRun:
    """Return the verified run at `path`, ready for inference.

    With `trusted_keys` (.pub files or folders), `require_signature`, or
    MODELYARD_TRUSTED_KEYS set, the manifest must carry a valid signature by a trusted key.
    An encrypted run is decrypted in memory with `key` (an EncryptionKey or a key file;
    default: MODELYARD_ENCRYPTION_KEY_FILE or MODELYARD_ENCRYPTION_KEY).
    Raises ArtifactError when the directory is not a finished run, is hostile (see
    `modelyard.registry.safety`), any file differs from the manifest, the signature check
    fails (SignatureError), or the weights cannot be loaded.
    """
    run_dir = Path(path)
    manifest = verify_manifest(run_dir)
    enforce_trust(run_dir, manifest, trusted_keys, require_signature)
    if is_encrypted(manifest):
        from modelyard.registry.memory import load_encrypted_run

        return load_encrypted_run(run_dir, manifest, key, device)
    check_weights(run_dir, list(manifest["files"]))
    kind = manifest.get("kind", "classifier")
    if kind != "classifier":
        return _run_loader(run_dir, kind)(run_dir, manifest, device)
    if "model.safetensors" not in manifest["files"]:
        raise ArtifactError(f"{run_dir} holds no model.safetensors in its manifest")
    labels = _read_labels(run_dir)
    recipe = _read_recipe(run_dir)
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(run_dir), local_files_only=True, use_safetensors=True
            )
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the model in {run_dir}: {exc}") from None
    if model.config.num_labels != len(labels):
        raise ArtifactError(
            f"{run_dir}: the model has {model.config.num_labels} outputs but {LABELS} names {len(labels)} labels"
        )
    model.to(device).eval()
    max_length = int(recipe.get("model", {}).get("max_length", 128))
    return LoadedRun(run_dir, model, load_tokenizer(run_dir), labels, max_length, manifest, recipe)
