"""The token classifier: built on a local backbone, wrapped for its training method, saved as
a whole safetensors model, and loaded back after its manifest is verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from modelyard.errors import ArtifactError, BackboneError, ModelyardError, RecipeError
from modelyard.models import load_tokenizer
from modelyard.models.build import quiet_transformers
from modelyard.models.onnx_runtime import ONNX_FILE, check_external_data
from modelyard.recipe import Recipe
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import RECIPE, read_recipe
from modelyard.registry.safety import check_weights
from modelyard.tagging.onnx_model import ONNX_TOKEN_CLASSIFIER, OnnxTokenModel

TOKEN_CLASSIFIER = "token-classifier"  # the manifest kind of a token-classification run


def build_tagger(folder: Path, tags: list[str]) -> Any:
    """Return a token classifier on the backbone in `folder` with a fresh head for `tags`.

    Raises BackboneError when the folder holds no model transformers can give such a head.
    """
    from transformers import AutoModelForTokenClassification

    try:
        with quiet_transformers():
            return AutoModelForTokenClassification.from_pretrained(
                str(folder),
                num_labels=len(tags),
                id2label=dict(enumerate(tags)),
                label2id={t: i for i, t in enumerate(tags)},
                local_files_only=True,
                use_safetensors=True,
            )
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot build a token classifier from {folder}: {exc}") from None


def apply_tagging_method(model: Any, recipe: Recipe) -> Any:
    """Return the model to train: itself (full; its word-embedding table frozen with
    train.freeze_word_embeddings) or wrapped in LoRA adapters whose head trains too.

    Raises RecipeError for a method token classification does not train, or a LoRA target
    module the model does not have.
    """
    method = recipe.train.method
    if method == "full":
        if recipe.train.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        return model
    if method != "lora":
        raise RecipeError(
            f"train.method '{method}' cannot train a token classifier; use full or lora"
        )
    from modelyard.methods.peft_methods import peft_module, prepare_lora

    # the token-classification task type keeps the new tag head trainable (modules_to_save)
    return prepare_lora(model, recipe, {"task_type": peft_module().TaskType.TOKEN_CLS})


def merged(model: Any) -> Any:
    """Return a plain transformers model: LoRA adapters folded into the weights they adapt."""
    merge = getattr(model, "merge_and_unload", None)
    return merge() if callable(merge) else model


def save_tagger(run_dir: Path, model: Any, tokenizer: Any) -> None:
    """Write the whole model (adapters merged) as safetensors and the tokenizer into `run_dir`."""
    with quiet_transformers():
        merged(model).save_pretrained(str(run_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(run_dir))


@dataclass
class LoadedTagger:
    """A verified token-classification run: model in eval mode, tokenizer, tags and records."""

    path: Path
    model: Any
    tokenizer: Any
    tags: list[str]
    manifest: dict[str, Any]
    recipe: Recipe

    @property
    def max_length(self) -> int:
        """Return the longest input in word pieces (the recipe's model.max_length)."""
        return self.recipe.model.max_length


def is_tagger(path: str | Path) -> bool:
    """Return True when `path` holds a finished token-classification run or its ONNX variant
    (by its manifest kind)."""
    from modelyard.registry.manifest import MANIFEST, read_manifest

    root = Path(path)
    if not (root / MANIFEST).is_file():
        return False
    return read_manifest(root).get("kind") in (TOKEN_CLASSIFIER, ONNX_TOKEN_CLASSIFIER)


def load_tagger(path: str | Path, device: str = "cpu") -> LoadedTagger:
    """Return the verified token-classification run at `path` (PyTorch, or the ONNX graph of
    a compressed variant, which always runs on the CPU), ready to predict.

    Raises ArtifactError when it is another kind of artifact, a file differs from the
    manifest, or the model cannot be loaded.
    """
    run_dir = Path(path)
    manifest = verify_manifest(run_dir)
    kind = str(manifest.get("kind", "classifier"))
    if kind not in (TOKEN_CLASSIFIER, ONNX_TOKEN_CLASSIFIER):
        raise ArtifactError(f"{run_dir} is a '{kind}' artifact, not a token-classification run")
    check_weights(run_dir, list(manifest["files"]))
    if not (run_dir / RECIPE).is_file():
        raise ArtifactError(f"{run_dir} holds no {RECIPE}; it is not a finished modelyard run")
    recipe = read_recipe(run_dir)
    try:
        with quiet_transformers():
            if kind == ONNX_TOKEN_CLASSIFIER:
                model, config = _load_graph(run_dir, manifest)
            else:
                model = _load_torch(run_dir).to(device)
                config = model.config
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the token classifier in {run_dir}: {exc}") from None
    tags = [str(config.id2label[i]) for i in range(config.num_labels)]
    tokenizer = load_tokenizer(run_dir)
    return LoadedTagger(run_dir, model.eval(), tokenizer, tags, manifest, recipe)


def _load_torch(run_dir: Path) -> Any:
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        str(run_dir), local_files_only=True, use_safetensors=True
    )


def _load_graph(run_dir: Path, manifest: dict[str, Any]) -> tuple[OnnxTokenModel, Any]:
    from transformers import AutoConfig

    if ONNX_FILE not in manifest["files"]:
        raise ArtifactError(f"{run_dir}: the manifest lists no {ONNX_FILE}")
    check_external_data(run_dir, manifest)
    try:
        model = OnnxTokenModel(run_dir / ONNX_FILE)
    except Exception as exc:  # onnxruntime's own load errors have no common base class
        if isinstance(exc, ModelyardError):
            raise
        raise ArtifactError(f"cannot load {run_dir / ONNX_FILE}: {exc}") from None
    return model, AutoConfig.from_pretrained(str(run_dir), local_files_only=True)
