"""Adapter artifacts: save a peft adapter beside its base's hash, load it back, merge it.

An adapter run holds `adapter_model.safetensors`, `adapter_config.json`, the classifier's
`config.json`, the tokenizer and `labels.json`; its manifest (kind `adapter-classifier`)
names the base backbone and the SHA-256 of its weights, and loading refuses another base.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from modelyard.errors import ArtifactError
from modelyard.fsutil import replace_dir
from modelyard.methods.catalog import CLASSIFIER
from modelyard.methods.peft_methods import peft_module, quiet_peft
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.build import quiet_transformers
from modelyard.recipe import DEFAULT_BACKBONE
from modelyard.registry.calibration import CALIBRATION
from modelyard.registry.manifest import MANIFEST, relative_parent, sha256_file, write_manifest
from modelyard.registry.records import read_labels, read_recipe
from modelyard.registry.run import LABELS, RECIPE, LoadedRun, save_model_files

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def base_weights_sha256(folder: Path) -> str:
    """Return the SHA-256 of a backbone folder's weights (of the per-file hashes when sharded).

    Raises ArtifactError when the folder holds no safetensors weights.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ArtifactError(f"{folder} holds no *.safetensors weights to identify the base by")
    if len(files) == 1:
        return sha256_file(files[0])
    joined = "\n".join(f"{p.name}:{sha256_file(p)}" for p in files)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _json_ready(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value  # peft's enums
    return value


def save_adapter_files(run_dir: Path, model: Any, tokenizer: Any, labels: list[str]) -> None:
    """Write the adapter weights and config, the classifier config, tokenizer and labels."""
    peft = peft_module()
    run_dir.mkdir(parents=True, exist_ok=True)
    state = peft.get_peft_model_state_dict(model)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()}, run_dir / ADAPTER_WEIGHTS
    )
    config = {k: _json_ready(v) for k, v in model.peft_config["default"].to_dict().items()}
    # the base is identified by its hash in the manifest, not by a path on the trainer's machine
    config["base_model_name_or_path"] = None
    (run_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    model.get_base_model().config.save_pretrained(str(run_dir))
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / LABELS).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


def adapter_manifest_extra(folder: Path) -> dict[str, Any]:
    """Return the manifest fields that name the base an adapter was trained on."""
    return {"base_sha256": base_weights_sha256(folder)}


def _check_base(run_dir: Path, manifest: dict[str, Any], folder: Path) -> None:
    expected = manifest.get("base_sha256")
    if not expected:
        raise ArtifactError(f"{run_dir / MANIFEST} does not name its base (no base_sha256)")
    actual = base_weights_sha256(folder)
    if actual != expected:
        raise ArtifactError(
            f"{run_dir} is an adapter for a base whose weights have SHA-256 {expected[:16]}..., "
            f"but the base at {folder} has {actual[:16]}...; an adapter on another base predicts "
            f"nonsense. Give the backbone it was trained on ('{manifest.get('backbone')}')."
        )


def _peft_type(run_dir: Path) -> str:
    try:
        config = json.loads((run_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{run_dir / ADAPTER_CONFIG} cannot be read: {exc}") from None
    return str(config.get("peft_type", ""))


def can_merge(run_dir: Path) -> bool:
    """Return True when the adapter in `run_dir` can be folded into its base's weights."""
    return _peft_type(run_dir) in {"LORA", "IA3"}


def build_base(run_dir: Path, folder: Path, labels: list[str]) -> Any:
    """Return the untrained model the adapter of `run_dir` was trained on, as its recipe's pooling says."""
    from modelyard.methods.task_model import build_task_model

    return build_task_model(folder, labels, read_recipe(run_dir).model.pooling)


def load_adapter_model(
    run_dir: Path, manifest: dict[str, Any], labels: list[str], merge: bool, base: str | None = None
) -> Any:
    """Return the base classifier with the adapter of `run_dir` applied (merged when asked and possible).

    `base` overrides the backbone named in the manifest. Raises ArtifactError when the
    base's weights differ from those the adapter was trained on, or the adapter cannot be read.
    """
    folder = resolve_backbone(base or str(manifest.get("backbone", DEFAULT_BACKBONE)))
    _check_base(run_dir, manifest, folder)
    peft = peft_module()
    model = build_base(run_dir, folder, labels)
    try:
        with quiet_transformers(), quiet_peft():
            model = peft.PeftModel.from_pretrained(model, str(run_dir), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ArtifactError(f"cannot load the adapter in {run_dir}: {exc}") from None
    if merge and can_merge(run_dir):
        model = model.merge_and_unload()
    return model.eval()


def load_adapter_run(
    run_dir: Path,
    manifest: dict[str, Any],
    device: str = "cpu",
    base: str | None = None,
    merge: bool = True,
) -> LoadedRun:
    """Return a LoadedRun for an adapter artifact whose manifest is already verified.

    The adapter is merged into the base in memory when its method allows (faster inference).
    Raises ArtifactError as `load_adapter_model` does.
    """
    labels = read_labels(run_dir)
    model = load_adapter_model(run_dir, manifest, labels, merge, base).to(device)
    tokenizer = load_tokenizer(run_dir)
    return LoadedRun(run_dir, model, tokenizer, labels, manifest, read_recipe(run_dir))


def merge_run(run: str | Path, output: str | Path | None = None, overwrite: bool = False) -> Path:
    """Fold the adapter of run `run` into its base and save a standalone classifier run; return its path.

    The new run's manifest names `run` as its parent. Raises ArtifactError when `run` is
    not an adapter run, its adapter cannot be merged (prompt tuning), or `output` exists.
    """
    from modelyard.registry.manifest import verify_manifest

    src = Path(run)
    manifest = verify_manifest(src)
    if manifest.get("kind") != "adapter-classifier":
        raise ArtifactError(
            f"{src} is a '{manifest.get('kind')}' artifact; merge needs an adapter run "
            "(trained with train.method lora, ia3 or prompt-tuning)"
        )
    if not can_merge(src):
        raise ArtifactError(
            f"{src} holds a {_peft_type(src)} adapter: its virtual tokens are not weights of the "
            "base, so it cannot be merged. Serve or predict with the adapter run as it is."
        )
    out = Path(output) if output else src.with_name(f"{src.name}-merged")
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass --overwrite or choose --output")
    from modelyard.methods.catalog import EMBEDDING
    from modelyard.methods.embedding import is_embedding_classifier, save_embedding_files

    loaded = load_adapter_run(src, manifest, merge=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    kind = CLASSIFIER
    if is_embedding_classifier(loaded.model):
        kind = EMBEDDING
        save_embedding_files(tmp, loaded.model, loaded.tokenizer, loaded.labels)
    else:
        save_model_files(tmp, loaded.model, loaded.tokenizer, loaded.labels)
    # merged and unmerged predict the same, so the run's records still describe the model
    for name in (RECIPE, CALIBRATION, "metrics.json", "report.md", "MODEL_CARD.md"):
        if (src / name).is_file():
            shutil.copyfile(src / name, tmp / name)
    extra = {"backbone": manifest.get("backbone"), "merged_from": manifest.get("kind")}
    extra["parent_manifest_sha256"] = sha256_file(src / MANIFEST)
    write_manifest(tmp, kind=kind, parent=relative_parent(src, out), extra=extra)
    return replace_dir(tmp, out)
