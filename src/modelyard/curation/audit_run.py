"""Run the label audit a recipe describes: load its data, embed, get out-of-fold
probabilities, and write the report."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from modelyard.curation.audit import (
    AuditReport,
    AuditRows,
    audit_rows,
    check_folds,
    embedding_oof_probs,
    write_report,
)
from modelyard.curation.embed import Embedder
from modelyard.data import load_data
from modelyard.data.splits import Split
from modelyard.models.device import select_device, select_dtype, torch_threads
from modelyard.models.encoding import Encoded, encode_split
from modelyard.models.predict import predict_logits
from modelyard.recipe import Recipe
from modelyard.trainer.loop import FineTuner, StepObserver, steps_per_epoch


def finetuned_oof_probs(
    recipe: Recipe, texts: list[str], labels: np.ndarray, names: list[str], progress: bool = False
) -> np.ndarray:
    """Return out-of-fold class probabilities from fine-tuning the recipe's backbone on each
    of `recipe.audit.folds` folds with the recipe's training settings.

    Raises BackboneError when the backbone cannot be loaded.
    """
    with torch_threads(recipe.train.num_threads):
        return _finetuned_oof(recipe, texts, labels, names, progress)


def _finetuned_oof(
    recipe: Recipe, texts: list[str], labels: np.ndarray, names: list[str], progress: bool
) -> np.ndarray:
    folds = StratifiedKFold(recipe.audit.folds, shuffle=True, random_state=recipe.run.seed)
    probs = np.zeros((len(texts), len(names)))
    for fold, (fit_at, held_at) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        probs[held_at] = _fit_predict(
            recipe,
            Split([texts[i] for i in fit_at], labels[fit_at].tolist()),
            [texts[i] for i in held_at],
            names,
            recipe.run.seed + fold,
            progress,
        )
    return probs


def finetune_and_predict(
    recipe: Recipe, fit: Split, texts: list[str], names: list[str], progress: bool = False
) -> np.ndarray:
    """Return class probabilities (len(texts), classes) for `texts` from the recipe's backbone
    fine-tuned on `fit` (label indices into `names`) with the recipe's training settings,
    its head started as `model.head_init` says.

    Raises BackboneError when the backbone cannot be loaded.
    """
    with torch_threads(recipe.train.num_threads):
        return _fit_predict(recipe, fit, texts, names, recipe.run.seed, progress)


@dataclass
class _Learner:
    """The recipe's task model on its device, with what encoding and prediction need."""

    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype | None
    pad: int

    def encode(self, texts: list[str], labels: list[int], length: int) -> Encoded:
        return encode_split(self.tokenizer, Split(texts, labels), length)

    def probs(self, data: Encoded) -> np.ndarray:
        logits = predict_logits(self.model, data, self.pad, self.device, self.dtype)
        return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()


def _build(recipe: Recipe, names: list[str], seed: int) -> _Learner:
    from modelyard.methods.task_model import build_task_model
    from modelyard.methods.zeroshot import init_head
    from modelyard.models import load_tokenizer, resolve_backbone

    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    device = select_device(recipe.train.device)
    torch.manual_seed(seed)
    model = build_task_model(folder, names, recipe.model.pooling)
    init_head(model, folder, names, recipe, tokenizer)
    dtype = select_dtype(recipe.train.precision, device)
    return _Learner(model, tokenizer, device, dtype, tokenizer.pad_token_id or 0)


def _train(
    recipe: Recipe,
    learner: _Learner,
    fit: Encoded,
    progress: bool,
    observers: Sequence[StepObserver] = (),
) -> int:
    """Fine-tune `learner` on `fit` with the recipe's settings; return the optimizer steps taken."""
    with tempfile.TemporaryDirectory(prefix="modelyard-audit-") as work:
        tuner = FineTuner(
            learner.model,
            recipe.train,
            learner.device,
            learner.dtype,
            learner.pad,
            recipe.run.seed,
            Path(work),
            progress,
            observers=observers,
        )
        return tuner.fit(fit, Encoded([], None, [], 0)).steps


def _fit_predict(
    recipe: Recipe, fit: Split, texts: list[str], names: list[str], seed: int, progress: bool
) -> np.ndarray:
    learner = _build(recipe, names, seed)
    length = recipe.model.max_length
    held = learner.encode(texts, [0] * len(texts), length)
    _train(recipe, learner, learner.encode(fit.texts, list(fit.labels), length), progress)
    return learner.probs(held)


class _Snapshots:
    """Sums the model's class probabilities for every training row every `every` steps."""

    def __init__(self, learner: _Learner, rows: Encoded, every: int) -> None:
        self.learner, self.rows, self.every = learner, rows, every
        self.total: np.ndarray | None = None
        self.taken, self.last_step = 0, 0

    def after_step(self, model: torch.nn.Module, step: int) -> None:
        if step % self.every == 0:
            self.take(step)

    def take(self, step: int) -> None:
        probs = self.learner.probs(self.rows)
        self.total = probs if self.total is None else self.total + probs
        self.taken, self.last_step = self.taken + 1, step

    def mean(self) -> np.ndarray:
        assert self.total is not None, "take() runs at least once"
        return self.total / self.taken


def dynamics_probs(
    recipe: Recipe, texts: list[str], labels: np.ndarray, names: list[str], progress: bool = False
) -> np.ndarray:
    """Return class probabilities (n, classes) for the rows a single fine-tune trains on: the
    mean of its predictions for every row at `recipe.audit.snapshots` evenly spaced points of
    each epoch and at the end (training dynamics).

    A clean row is learned early and keeps a high probability for its label; a mislabelled
    row is learned late or never, so its label's probability stays low on average even though
    the model trains on it (the idea behind the area under the margin, Pleiss et al. 2020).
    One training on every row instead of one per fold. Raises BackboneError when the
    backbone cannot be loaded.
    """
    with torch_threads(recipe.train.num_threads):
        learner = _build(recipe, names, recipe.run.seed)
        rows = learner.encode(texts, labels.tolist(), recipe.model.max_length)
        per_epoch = steps_per_epoch(len(rows), recipe.train)
        snapshots = _Snapshots(learner, rows, max(1, per_epoch // recipe.audit.snapshots))
        steps = _train(recipe, learner, rows, progress, [snapshots])
        if snapshots.last_step != steps:
            snapshots.take(steps)  # the trained model's own view always counts
        return snapshots.mean()


def run_audit(recipe: Recipe, output: Path | None = None, progress: bool = False) -> AuditReport:
    """Audit the data of `recipe` and write the report to `output` (default
    `<run.output_dir>/audit/<run.name>`); return the report, whose `files` name what was written.

    Raises DataError for unreadable data or a class with fewer rows than folds, and
    BackboneError when the backbone cannot be loaded.
    """
    with torch_threads(recipe.train.num_threads):
        bundle = load_data(recipe.data, recipe.run.seed)
        rows = AuditRows.from_bundle(bundle)
        # the dynamics learner trains on every row: no fold needs a share of each class
        check_folds(
            rows.labels, rows.names, 1 if recipe.audit.learner == "dynamics" else recipe.audit.folds
        )
        embedder = Embedder.from_backbone(recipe.model.backbone, recipe.model.max_length)
        vectors = embedder.encode(rows.texts)
        cfg = recipe.audit
        if cfg.learner == "finetune":
            probs = finetuned_oof_probs(recipe, rows.texts, rows.labels, rows.names, progress)
        elif cfg.learner == "dynamics":
            probs = dynamics_probs(recipe, rows.texts, rows.labels, rows.names, progress)
        else:
            probs = embedding_oof_probs(vectors, rows.labels, cfg.folds, recipe.run.seed, cfg.c)
        report = audit_rows(rows, vectors, probs, cfg)
    write_report(report, output or recipe.run.output_dir / "audit" / recipe.run.name)
    return report
