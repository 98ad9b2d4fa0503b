"""Save a trained classifier as a run artifact, and load one back after verifying it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from modelyard.errors import ArtifactError
from modelyard.evaluation.calibration import check_temperature
from modelyard.models.build import load_tokenizer, quiet_transformers
from modelyard.recipe import Recipe
from modelyard.registry.calibration import read_temperature
from modelyard.registry.crypto import EncryptionKey, is_encrypted
from modelyard.registry.kinds import ARTIFACT_KINDS, resolve, task_refusal
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import (
    LABELS,
    RECIPE,
    read_labels,
    read_recipe,
    saved_recipe_from_dict,
)
from modelyard.registry.safety import check_weights
from modelyard.registry.signing import enforce_trust

__all__ = [
    "LABELS",
    "RECIPE",
    "LoadedRun",
    "load_run",
    "loads_as_torch_run",
    "read_labels",
    "read_recipe",
    "save_model_files",
]


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


@dataclass(init=False)
class LoadedRun:
    """A verified run: model in eval mode, tokenizer, label names and the run's records.

    `recipe` is the run's validated recipe (`read_recipe`); `max_length`, the longest input
    in tokens, is the recipe's `model.max_length`. `temperature` divides the logits before
    the softmax (see `modelyard.registry.calibration`): given, or read from the artifact's
    calibration record when its manifest lists one, else 1.0.
    """

    path: Path
    model: Any
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    manifest: dict[str, Any]
    recipe: Recipe
    temperature: float

    def __init__(
        self,
        path: Path,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        labels: list[str],
        *records: Any,
        temperature: float | None = None,
        **named: Any,
    ) -> None:
        self.path, self.model, self.tokenizer, self.labels = Path(path), model, tokenizer, labels
        self.manifest, self.recipe = _records(self.path, records, named)
        if temperature is None:
            self.temperature = read_temperature(self.path, self.manifest or {})
        else:
            try:
                self.temperature = check_temperature(temperature)
            except ValueError as exc:
                raise ArtifactError(f"{self.path}: {exc}") from None

    @property
    def max_length(self) -> int:
        """Return the longest input in tokens; longer texts are truncated."""
        return self.recipe.model.max_length


def _records(path: Path, records: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, Recipe]:
    # LoadedRun(path, model, tokenizer, labels, manifest, recipe); 0.1.0 took max_length
    # before manifest and a recipe dict, as run loaders of plug-ins may still pass
    old = len(records) == 3 or "max_length" in named
    names = ("max_length", "manifest", "recipe") if old else ("manifest", "recipe")
    given = dict(zip(names, records, strict=False)) | named
    if set(given) != set(names):
        raise TypeError("LoadedRun takes path, model, tokenizer, labels, manifest and recipe")
    recipe = given["recipe"]
    if old:
        warnings.warn(
            "LoadedRun(..., max_length, manifest, recipe) is deprecated; pass "
            "LoadedRun(path, model, tokenizer, labels, manifest, recipe) with a Recipe "
            "(modelyard.registry.read_recipe): max_length is the recipe's model.max_length",
            DeprecationWarning,
            stacklevel=3,
        )
    if not isinstance(recipe, Recipe):
        recipe = saved_recipe_from_dict(recipe or {}, path / RECIPE)
    if old and recipe.model.max_length != given["max_length"]:
        model = recipe.model.model_copy(update={"max_length": int(given["max_length"])})
        recipe = recipe.model_copy(update={"model": model})
    return given["manifest"], recipe


def save_model_files(
    run_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase, labels: list[str]
) -> None:
    """Write weights (safetensors), config, tokenizer and labels.json into `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(str(run_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / LABELS).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


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
        from modelyard.registry.in_memory import load_encrypted_run

        return load_encrypted_run(run_dir, manifest, key, device)
    check_weights(run_dir, list(manifest["files"]))
    kind = manifest.get("kind", "classifier")
    if kind != "classifier":
        refusal = task_refusal(manifest)
        if refusal is not None:
            raise ArtifactError(f"{run_dir}: {refusal}")
        return _run_loader(run_dir, kind)(run_dir, manifest, device)
    if "model.safetensors" not in manifest["files"]:
        raise ArtifactError(f"{run_dir} holds no model.safetensors in its manifest")
    labels = read_labels(run_dir)
    recipe = read_recipe(run_dir)
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
    check_max_length(run_dir, recipe.model.max_length, model.config)
    model.to(device).eval()
    return LoadedRun(run_dir, model, load_tokenizer(run_dir), labels, manifest, recipe)


def check_max_length(run_dir: Path, max_length: int, config: Any) -> None:
    """Refuse a recipe `max_length` beyond the positions the model has (it would crash on long
    texts after loading); raise ArtifactError, else return None."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ArtifactError(
            f"{run_dir / RECIPE}: model.max_length is {max_length}, but the model has only "
            f"{positions} positions; refusing to load this artifact (set max_length <= {positions})"
        )


_DEPRECATED = {"_read_labels": "read_labels", "_read_recipe": "read_recipe"}


def _read_recipe_dict(run_dir: Path) -> dict[str, Any]:
    # what the private _read_recipe returned: the recipe as a plain dict
    return read_recipe(run_dir).model_dump(mode="json")


def __getattr__(name: str) -> Any:
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"modelyard.registry.run.{name} is deprecated; use modelyard.registry.{_DEPRECATED[name]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return read_labels if name == "_read_labels" else _read_recipe_dict
