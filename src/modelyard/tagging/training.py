"""One token-classification run: tagged data, the token classifier, the fine-tuning loop,
entity-level evaluation and the artifact.

`prepare_tagging_run` does everything that can fail on a user's input (recipe, data,
backbone, method) before the run directory exists; `TaggingRun.train` then trains,
evaluates and saves.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from modelyard.errors import DataError
from modelyard.evaluation import peak_rss_mb
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.methods.session import parameter_figures
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.device import select_device, select_dtype
from modelyard.recipe import Recipe
from modelyard.registry.manifest import write_manifest
from modelyard.tagging.data import Sentence, TagSplits, load_tagged
from modelyard.tagging.encoding import TagData, encode_sentences
from modelyard.tagging.metrics import entity_metrics
from modelyard.tagging.model import (
    TOKEN_CLASSIFIER,
    apply_tagging_method,
    build_tagger,
    save_tagger,
)
from modelyard.tagging.objective import TokenObjective
from modelyard.tagging.predict import predict_words
from modelyard.tagging.report import tagging_card, tagging_report
from modelyard.trainer.dropout import fast_dropout
from modelyard.trainer.loop import FineTuner


@dataclass
class TaggingRun:
    """A prepared token-classification run: the model to train and its encoded data."""

    recipe: Recipe
    folder: Path
    tokenizer: Any
    model: Any
    splits: TagSplits
    train_rows: TagData
    dev_rows: TagData

    def train(self, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train, evaluate the entities of the held-out split, save the artifact; return
        metrics, training and data figures."""
        recipe = self.recipe
        device = select_device(recipe.train.device)
        dtype = select_dtype(recipe.train.precision, device)
        held_out, split = self._held_out()
        pad = int(self.tokenizer.pad_token_id or 0)
        objective = TokenObjective(
            pad, recipe.train.early_stopping.metric, self.splits.tags, recipe.train.batch_size
        )
        tuner = FineTuner(
            self.model,
            recipe.train,
            device,
            dtype,
            pad,
            recipe.run.seed,
            run_dir,
            progress,
            objective=objective,
        )
        with fast_dropout(self.model):
            result = tuner.fit(self.train_rows, self.dev_rows, resume=resume)
        metrics = evaluate_sentences(
            self.model, self.tokenizer, self.splits.tags, held_out, recipe.model.max_length
        )
        metrics["evaluated_on"] = split
        training = {
            **asdict(result),
            "device": str(device),
            "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
            "train_truncated": self.train_rows.truncated,
            **parameter_figures(self.model),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        self._save(run_dir, metrics, training)
        return {"metrics": metrics, "training": training, "data_report": self.splits.report}

    def _held_out(self) -> tuple[list[Sentence], str]:
        if self.splits.test:
            return self.splits.test, "test"
        if self.splits.dev:
            return self.splits.dev, "dev"
        raise DataError(
            "no test or dev sentences to evaluate on: set data.split.test above 0 or give data.test"
        )

    def _save(self, run_dir: Path, metrics: dict[str, Any], training: dict[str, Any]) -> None:
        recipe, data = self.recipe, self.splits.report
        model = self.model.cpu()
        save_tagger(run_dir, model, self.tokenizer)
        atomic_write_json(run_dir / "metrics.json", {"test": metrics, "training": training})
        atomic_write_json(run_dir / "data_report.json", data)
        atomic_write_text(run_dir / "report.md", tagging_report(recipe, metrics, training, data))
        atomic_write_text(run_dir / "MODEL_CARD.md", tagging_card(recipe, metrics, data))
        if not recipe.train.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        extra = {
            "backbone": recipe.model.backbone,
            "task": recipe.task,
            "method": recipe.train.method,
            "tags": self.splits.tags,
            "scheme": self.splits.scheme,
        }
        write_manifest(run_dir, kind=TOKEN_CLASSIFIER, extra=extra)


def evaluate_sentences(
    model: Any, tokenizer: Any, tags: list[str], sentences: list[Sentence], max_length: int
) -> dict[str, Any]:
    """Return the entity-level metrics of the model's tags for `sentences` against their own.

    Every word counts: words cut off by `max_length` are predicted O (and counted in
    `truncated_sentences`).
    """
    predicted = predict_words(model, tokenizer, tags, [s.tokens for s in sentences], max_length)
    metrics = entity_metrics([s.tags for s in sentences], [p.tags for p in predicted])
    metrics["truncated_sentences"] = sum(p.truncated for p in predicted)
    return metrics


def prepare_tagging_run(recipe: Recipe) -> TaggingRun:
    """Return the run a token-classification recipe describes, with data read and the model built.

    Raises RecipeError, DataError or BackboneError for a user's mistake, before anything is written.
    """
    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    splits = load_tagged(recipe)
    max_len = recipe.model.max_length
    train_rows = encode_sentences(tokenizer, splits.train, splits.tags, max_len)
    dev_rows = encode_sentences(tokenizer, splits.dev, splits.tags, max_len)
    splits.report["train_truncated"] = train_rows.truncated
    torch.manual_seed(recipe.run.seed)
    model = apply_tagging_method(build_tagger(folder, splits.tags), recipe)
    return TaggingRun(recipe, folder, tokenizer, model, splits, train_rows, dev_rows)
