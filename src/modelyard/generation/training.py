"""One language-model run: data, backbone, method, the fine-tuning loop, evaluation before
and after, and the artifact.

`prepare_lm_run` does everything that can fail on a user's input (recipe, data, backbone,
method) before the run directory exists; `LMRun.train` then trains, evaluates and saves.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from modelyard.errors import DataError, RecipeError
from modelyard.evaluation import peak_rss_mb
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.generation.artifacts import artifact_kind, is_adapter, save_lm_files
from modelyard.generation.build import apply_method, lm_kind, lm_tokenizer, load_lm
from modelyard.generation.chat import require_template
from modelyard.generation.data import LMSplits, load_lm_data
from modelyard.generation.heldout import LMTask, encode_items, evaluate_lm, make_objective
from modelyard.generation.packing import LMData
from modelyard.generation.report import lm_model_card, lm_report
from modelyard.methods.session import parameter_figures
from modelyard.models import resolve_backbone
from modelyard.models.build import enable_gradient_checkpointing
from modelyard.models.device import select_device, select_dtype
from modelyard.recipe import Recipe
from modelyard.registry.manifest import write_manifest
from modelyard.trainer.loop import FineTuner, HistoryListener


@dataclass
class LMRun:
    """A prepared language-model run: the model to train and its encoded data."""

    recipe: Recipe
    folder: Path
    spec: LMTask
    tokenizer: Any
    model: Any
    splits: LMSplits
    train_rows: LMData
    dev_rows: LMData
    counts: dict[str, int] = field(default_factory=dict)

    def train(
        self,
        run_dir: Path,
        resume: bool = False,
        progress: bool = True,
        listeners: Sequence[HistoryListener] = (),
    ) -> dict[str, Any]:
        """Train, evaluate before and after, save the artifact; return metrics, training and
        data figures. `listeners` receive each loss and dev evaluation as it is measured."""
        recipe, spec = self.recipe, self.spec
        device = select_device(recipe.train.device)
        dtype = select_dtype(recipe.train.precision, device)
        held_out, split = self._held_out()
        before = self._evaluate(held_out, device) if recipe.generation.eval_before else None
        objective = make_objective(self.tokenizer, spec, recipe.generation, recipe.train.batch_size)
        tuner = FineTuner(
            self.model,
            recipe.train,
            device,
            dtype,
            objective_pad(self.tokenizer),
            recipe.run.seed,
            run_dir,
            progress,
            objective=objective,
            listeners=listeners,
        )
        result = tuner.fit(self.train_rows, self.dev_rows, resume=resume)
        after = self._evaluate(held_out, device)
        training = {
            **asdict(result),
            "device": str(device),
            "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
            "packing": spec.packing,
            "train_rows": len(self.train_rows),
            "train_loss_tokens": self.train_rows.loss_tokens(),
            **parameter_figures(self.model),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        metrics = {"evaluated_on": split, "before": before, "after": after}
        data_report = {**self.splits.report, **{f"train_{k}": v for k, v in self.counts.items()}}
        self._save(run_dir, metrics, training, data_report)
        return {"metrics": metrics, "training": training, "data_report": data_report}

    def _held_out(self) -> tuple[list[Any], str]:
        if self.splits.test:
            return self.splits.test, "test"
        if self.splits.dev:
            return self.splits.dev, "dev"
        raise DataError(
            "no test or dev rows to evaluate on: set data.split.test above 0 or give data.test"
        )

    def _evaluate(self, items: list[Any], device: torch.device) -> dict[str, Any]:
        self.model.to(device)
        return evaluate_lm(
            self.model, self.tokenizer, items, self.spec, self.recipe.generation, device
        )

    def _save(
        self, run_dir: Path, metrics: dict[str, Any], training: dict[str, Any], data: dict[str, Any]
    ) -> None:
        model = self.model.cpu()
        save_lm_files(run_dir, model, self.tokenizer)
        atomic_write_json(run_dir / "metrics.json", {"test": metrics, "training": training})
        atomic_write_json(run_dir / "data_report.json", data)
        atomic_write_text(run_dir / "report.md", lm_report(self.recipe, metrics, training, data))
        atomic_write_text(
            run_dir / "MODEL_CARD.md",
            lm_model_card(self.recipe, self.spec, metrics, training, data),
        )
        if not self.recipe.train.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        adapter = is_adapter(model)
        extra: dict[str, Any] = {
            "backbone": self.recipe.model.backbone,
            "task": self.recipe.task,
            "method": self.recipe.train.method,
        }
        if adapter:
            from modelyard.methods.adapters import adapter_manifest_extra

            extra.update(adapter_manifest_extra(self.folder))
        write_manifest(run_dir, kind=artifact_kind(self.spec.kind, adapter), extra=extra)


def objective_pad(tokenizer: Any) -> int:
    """Return the id batches are padded with."""
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)


def _packing(recipe: Recipe, kind: str) -> bool:
    packing = recipe.generation.packing
    if packing and kind == "encoder":
        raise RecipeError(
            "generation.packing needs a decoder: an encoder attends both ways, so packed examples "
            "would see each other; leave it unset (encoders batch by length)"
        )
    return kind == "decoder" if packing is None else packing


def prepare_lm_run(recipe: Recipe) -> LMRun:
    """Return the run a language-model recipe describes, with data read and the model built.

    Raises RecipeError, DataError or BackboneError for a user's mistake, before anything is written.
    """
    folder = resolve_backbone(recipe.model.backbone)
    kind = lm_kind(recipe, folder)
    tokenizer = lm_tokenizer(folder, recipe, kind)
    spec = LMTask(
        recipe.task, kind, recipe.model.max_length, _packing(recipe, kind), recipe.run.seed
    )
    if spec.is_chat:
        require_template(tokenizer, recipe.model.backbone)
    splits = load_lm_data(recipe)
    counts: dict[str, int] = {}
    train_rows = encode_items(tokenizer, splits.train, spec, counts)
    if len(train_rows) == 0:
        raise DataError(f"no training example is left after encoding ({counts})")
    dev_rows = encode_items(tokenizer, splits.dev, spec, {})
    torch.manual_seed(recipe.run.seed)
    model = apply_method(load_lm(folder, kind), recipe, kind)
    if recipe.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return LMRun(recipe, folder, spec, tokenizer, model, splits, train_rows, dev_rows, counts)
