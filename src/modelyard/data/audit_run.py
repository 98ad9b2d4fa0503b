"""Run the label audit a recipe describes: load its data, embed, get out-of-fold
probabilities, and write the report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from modelyard.data import load_data
from modelyard.data.audit import (
    AuditReport,
    AuditRows,
    audit_rows,
    check_folds,
    embedding_oof_probs,
    write_report,
)
from modelyard.data.embed import Embedder
from modelyard.data.splits import Split
from modelyard.recipe import Recipe
from modelyard.trainer.batching import Encoded, encode_split
from modelyard.trainer.device import select_device, select_dtype, torch_threads


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


def _fit_predict(
    recipe: Recipe, fit: Split, texts: list[str], names: list[str], seed: int, progress: bool
) -> np.ndarray:
    from modelyard.methods.session import build_task_model
    from modelyard.methods.zeroshot import init_head
    from modelyard.models import load_tokenizer, resolve_backbone
    from modelyard.trainer.loop import FineTuner, predict_logits

    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    device = select_device(recipe.train.device)
    dtype = select_dtype(recipe.train.precision, device)
    pad = tokenizer.pad_token_id or 0
    torch.manual_seed(seed)
    model = build_task_model(folder, names, recipe.model.pooling)
    init_head(model, folder, names, recipe, tokenizer)
    length = recipe.model.max_length
    held = encode_split(tokenizer, Split(texts, [0] * len(texts)), length)
    with tempfile.TemporaryDirectory(prefix="modelyard-audit-") as work:
        tuner = FineTuner(
            model, recipe.train, device, dtype, pad, recipe.run.seed, Path(work), progress
        )
        tuner.fit(encode_split(tokenizer, fit, length), Encoded([], None, [], 0))
    logits = predict_logits(model, held, pad, device, dtype)
    return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()


def run_audit(recipe: Recipe, output: Path | None = None, progress: bool = False) -> AuditReport:
    """Audit the data of `recipe` and write the report to `output` (default
    `<run.output_dir>/audit/<run.name>`); return the report, whose `files` name what was written.

    Raises DataError for unreadable data or a class with fewer rows than folds, and
    BackboneError when the backbone cannot be loaded.
    """
    with torch_threads(recipe.train.num_threads):
        bundle = load_data(recipe.data, recipe.run.seed)
        rows = AuditRows.from_bundle(bundle)
        check_folds(rows.labels, rows.names, recipe.audit.folds)
        embedder = Embedder.from_backbone(recipe.model.backbone, recipe.model.max_length)
        vectors = embedder.encode(rows.texts)
        cfg = recipe.audit
        if cfg.learner == "finetune":
            probs = finetuned_oof_probs(recipe, rows.texts, rows.labels, rows.names, progress)
        else:
            probs = embedding_oof_probs(vectors, rows.labels, cfg.folds, recipe.run.seed, cfg.c)
        report = audit_rows(rows, vectors, probs, cfg)
    write_report(report, output or recipe.run.output_dir / "audit" / recipe.run.name)
    return report
