"""Where the training pipeline meets the methods: build the model to train, its loop hooks,
its training procedure, and the artifact it saves.

`run_training` calls `start_method` once the data is loaded, trains through
`MethodSession.fit`, and saves through `MethodSession.save`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modelyard.data import DataBundle
from modelyard.methods.catalog import ADAPTER, CLASSIFIER, EMBEDDING, TRAINING_METHODS, Method
from modelyard.methods.task_model import build_task_model
from modelyard.models.build import enable_gradient_checkpointing
from modelyard.models.encoding import Encoded
from modelyard.recipe import Recipe
from modelyard.registry.run import save_model_files
from modelyard.trainer.loop import FineTuner, TrainingHook, TrainResult


@dataclass
class MethodSession:
    """The method of one run, the model it trains and the hooks it adds to the loop."""

    recipe: Recipe
    method: Method
    folder: Path
    model: Any
    hooks: list[TrainingHook] = field(default_factory=list)
    parent: Any = None

    @property
    def kind(self) -> str:
        """Return the manifest kind of the artifact this run saves."""
        if self.method.kind == CLASSIFIER and self.recipe.model.pooling == "mean":
            return EMBEDDING
        return self.method.kind

    def fit(self, tuner: FineTuner, train: Encoded, dev: Encoded, resume: bool) -> TrainResult:
        """Train the model (the loop, or the method's own procedure) and return what was measured."""
        if self.method.fit is not None:
            return self.method.fit(self.model, self.recipe, train, dev, tuner)
        return tuner.fit(train, dev, resume=resume)

    def save(
        self,
        run_dir: Path,
        tokenizer: Any,
        bundle: DataBundle,
        train: Encoded,
        training: dict[str, Any],
    ) -> dict[str, Any]:
        """Write the model files and what `train.memory` keeps; add size figures to `training`.

        Returns the fields the run's manifest adds (method, base hash, parent run).
        """
        from modelyard.methods.memory import save_memory

        model = self.model.cpu()
        extra: dict[str, Any] = {"method": self.method.name}
        _save_model(self.kind, run_dir, model, tokenizer, bundle.labels)
        if self.kind == ADAPTER:
            from modelyard.methods.adapters import adapter_manifest_extra

            extra.update(adapter_manifest_extra(self.folder))
        save_memory(run_dir, self.recipe, model, bundle, train)
        training.update(parameter_figures(model))
        training.update(artifact_figures(run_dir))
        if self.parent is not None:
            extra["continued_from"] = str(self.parent)
        return extra


def _save_model(kind: str, run_dir: Path, model: Any, tokenizer: Any, labels: list[str]) -> None:
    if kind == ADAPTER:
        from modelyard.methods.adapters import save_adapter_files

        save_adapter_files(run_dir, model, tokenizer, labels)
    elif kind == EMBEDDING:
        from modelyard.methods.embedding import save_embedding_files

        save_embedding_files(run_dir, model, tokenizer, labels)
    else:
        save_model_files(run_dir, model, tokenizer, labels)


def parameter_figures(model: torch.nn.Module) -> dict[str, Any]:
    """Return the total and trainable parameter counts and the trainable share in percent."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "parameters": total,
        "trainable_parameters": trainable,
        "trainable_pct": round(100.0 * trainable / max(total, 1), 4),
    }


def artifact_figures(run_dir: Path) -> dict[str, Any]:
    """Return the bytes of the model files written so far (weights, configs, tokenizer, labels)."""
    files = [p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    weights = sum(p.stat().st_size for p in files if p.suffix == ".safetensors")
    return {
        "weights_bytes": weights,
        "artifact_bytes": sum(p.stat().st_size for p in files),
    }


def start_method(recipe: Recipe, folder: Path, bundle: DataBundle) -> MethodSession:
    """Return the session of the recipe's method: the model to train and its loop hooks.

    With `train.continual`, the model starts from the earlier run and `bundle` gains its
    labels (and its rehearsal sample when asked). Raises RecipeError for bad method
    options and ArtifactError for an unusable earlier run.
    """
    from modelyard.methods.adversarial import adversarial_hook
    from modelyard.methods.continual import continue_from

    method = TRAINING_METHODS.get(recipe.train.method)
    session = MethodSession(recipe, method, folder, None)
    if recipe.train.continual is not None:
        model, hooks = continue_from(recipe, bundle)
        session.hooks.extend(hooks)
        session.parent = recipe.train.continual.from_run
    elif method.build is not None:
        model = method.build(folder, bundle.labels, recipe)
    else:
        model = build_task_model(folder, bundle.labels, recipe.model.pooling)
    if recipe.model.head_init is not None:
        from modelyard.methods.zeroshot import init_head

        init_head(model, folder, bundle.labels, recipe)
    session.model = method.prepare(model, recipe)
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(session.model)
    if recipe.train.adversarial is not None:
        session.hooks.append(adversarial_hook(session.model, recipe.train.adversarial))
    return session
