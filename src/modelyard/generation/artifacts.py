"""Language-model artifacts: save a run's model (whole, or a peft adapter beside its base's
hash) and load one back after verifying its manifest.

Kinds: `causal-lm` and `masked-lm` hold whole safetensors models; `adapter-causal-lm` and
`adapter-masked-lm` hold only the adapter, and loading refuses a base whose weights differ
from the one it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from modelyard.errors import ArtifactError
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.build import quiet_transformers
from modelyard.recipe import Recipe
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import RECIPE, read_recipe
from modelyard.registry.safety import check_weights

CAUSAL = "causal-lm"
MASKED = "masked-lm"
ADAPTER_PREFIX = "adapter-"
LM_KINDS = (CAUSAL, MASKED, ADAPTER_PREFIX + CAUSAL, ADAPTER_PREFIX + MASKED)
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoadedLM:
    """A verified language-model run: model (adapters merged) in eval mode, tokenizer, records."""

    path: Path
    model: Any
    tokenizer: Any
    kind: str
    manifest: dict[str, Any]
    recipe: Recipe

    @property
    def is_causal(self) -> bool:
        """Return True for a decoder (it generates text)."""
        return self.kind.endswith(CAUSAL)


def artifact_kind(backbone_kind: str, adapter: bool) -> str:
    """Return the manifest kind of a language-model run."""
    base = CAUSAL if backbone_kind == "decoder" else MASKED
    return ADAPTER_PREFIX + base if adapter else base


def is_adapter(model: Any) -> bool:
    """Return True when the model is a peft wrapper (its run saves only the adapter)."""
    return hasattr(model, "peft_config")


def save_lm_files(run_dir: Path, model: Any, tokenizer: Any) -> None:
    """Write the model (whole, or the adapter with its config) and the tokenizer into `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(str(run_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(run_dir))
    # peft writes a template README; the run's own MODEL_CARD.md describes the model
    (run_dir / "README.md").unlink(missing_ok=True)
    config = run_dir / ADAPTER_CONFIG
    if config.is_file():
        # the base is identified by its hash in the manifest, not by a path on the trainer's machine
        data = json.loads(config.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = None
        config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _whole_model(run_dir: Path, kind: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForCausalLM if kind == CAUSAL else AutoModelForMaskedLM
    with quiet_transformers():
        return auto.from_pretrained(str(run_dir), local_files_only=True, use_safetensors=True)


def _adapter_model(run_dir: Path, manifest: dict[str, Any], base: str | None) -> Any:
    from modelyard.generation.build import load_lm
    from modelyard.methods.adapters import base_weights_sha256
    from modelyard.methods.peft_methods import peft_module, quiet_peft

    folder = resolve_backbone(base or str(manifest.get("backbone")))
    expected, actual = manifest.get("base_sha256"), base_weights_sha256(folder)
    if expected != actual:
        raise ArtifactError(
            f"{run_dir} is an adapter for a base whose weights have SHA-256 {str(expected)[:16]}..., "
            f"but {folder} has {actual[:16]}...; give the backbone it was trained on "
            f"('{manifest.get('backbone')}')"
        )
    kind = "decoder" if manifest["kind"].endswith(CAUSAL) else "encoder"
    model = load_lm(folder, kind)
    with quiet_transformers(), quiet_peft():
        model = peft_module().PeftModel.from_pretrained(model, str(run_dir), is_trainable=False)
    return model.merge_and_unload()


def load_lm_run(path: str | Path, base: str | None = None, device: str = "cpu") -> LoadedLM:
    """Return the verified language-model run at `path`, adapters merged, ready to generate.

    `base` overrides the backbone an adapter run names. Raises ArtifactError when the run
    is not a language-model run, a file differs from the manifest, or the weights (or the
    adapter's base) cannot be loaded.
    """
    run_dir = Path(path)
    manifest = verify_manifest(run_dir)
    kind = str(manifest.get("kind", "classifier"))
    if kind not in LM_KINDS:
        raise ArtifactError(
            f"{run_dir} is a '{kind}' artifact, not a language-model run ({', '.join(LM_KINDS)})"
        )
    check_weights(run_dir, list(manifest["files"]))
    if not (run_dir / RECIPE).is_file():
        raise ArtifactError(f"{run_dir} holds no {RECIPE}; it is not a finished modelyard run")
    recipe = read_recipe(run_dir)
    try:
        if kind.startswith(ADAPTER_PREFIX):
            model = _adapter_model(run_dir, manifest, base)
        else:
            model = _whole_model(run_dir, kind)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the model in {run_dir}: {exc}") from None
    tokenizer = load_tokenizer(run_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedLM(run_dir, model.to(device).eval(), tokenizer, kind, manifest, recipe)
