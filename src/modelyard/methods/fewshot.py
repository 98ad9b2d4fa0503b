"""SetFit-style few-shot training, written here rather than pulled from the `setfit` package.

Phase 1 fine-tunes the sentence encoder contrastively: pairs of training texts with the
same label are pulled to cosine similarity 1, pairs with different labels pushed to 0
(mean squared error, as SetFit's CosineSimilarityLoss). Phase 2 fits a logistic
regression on the new embeddings and copies it into the linear head.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import get_linear_schedule_with_warmup

from modelyard.errors import DataError
from modelyard.methods.catalog import builtin, register_training_method
from modelyard.methods.embedding import EmbeddingClassifier, build_embedding_classifier
from modelyard.models.device import autocast
from modelyard.models.encoding import Encoded, collate, eval_batches
from modelyard.recipe import Recipe, SetFitOptions
from modelyard.trainer.loop import FineTuner, TrainResult


def contrastive_pairs(labels: list[int], per_example: int, seed: int) -> np.ndarray:
    """Return (n, 3) rows of (i, j, same-label 1/0): half positive, half negative pairs per example.

    Raises DataError when a class has a single example (no positive pair) or there is one class.
    """
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise DataError(
            "setfit needs at least 2 classes and 2 training examples per class; class sizes: "
            + ", ".join(f"{c}: {n}" for c, n in zip(classes, counts, strict=True))
        )
    rng = np.random.default_rng(seed)
    rows = []
    for i, label in enumerate(y):
        same = np.flatnonzero((y == label) & (np.arange(len(y)) != i))
        other = np.flatnonzero(y != label)
        for k in range(per_example):
            pool, target = (same, 1) if k % 2 == 0 else (other, 0)
            rows.append((i, int(rng.choice(pool)), target))
    order = rng.permutation(len(rows))
    return np.asarray(rows, dtype=np.int64)[order]


def _embed(model: EmbeddingClassifier, data: Encoded, index: np.ndarray) -> torch.Tensor:
    device = next(model.parameters()).device
    batch = collate(data.input_ids, data.token_type_ids, index, 0)
    return model.embed(**{k: v.to(device) for k, v in batch.items()})


def _contrastive_phase(
    model: EmbeddingClassifier, opts: SetFitOptions, train: Encoded, tuner: FineTuner
) -> tuple[int, int, float, float]:
    pairs = contrastive_pairs(train.labels, opts.pairs_per_example, tuner.seed)
    steps_per_epoch = -(-len(pairs) // opts.batch_size)
    total = steps_per_epoch * opts.pair_epochs
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=opts.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
    model.train()
    start, losses = time.perf_counter(), []
    for _ in range(opts.pair_epochs):
        for s in range(0, len(pairs), opts.batch_size):
            chunk = pairs[s : s + opts.batch_size]
            # each text is encoded once per step, however many of the step's pairs it is in
            index, inverse = np.unique(chunk[:, :2], return_inverse=True)
            with autocast(tuner.device, tuner.dtype):
                vectors = _embed(model, train, index)
            a, b = vectors[inverse.reshape(-1, 2)[:, 0]], vectors[inverse.reshape(-1, 2)[:, 1]]
            target = torch.as_tensor(chunk[:, 2], dtype=torch.float32, device=tuner.device)
            loss = torch.nn.functional.mse_loss((a * b).sum(dim=-1), target)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    return (
        total,
        2 * len(pairs) * opts.pair_epochs,
        time.perf_counter() - start,
        float(np.mean(losses[-steps_per_epoch:])),
    )


def embed_all(model: EmbeddingClassifier, data: Encoded, batch_size: int = 64) -> np.ndarray:
    """Return the unit-length embedding of every example of `data`, in order."""
    model.eval()
    out = np.zeros((len(data), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for index in eval_batches(data.lengths(), batch_size):
            out[index] = _embed(model, data, index).cpu().numpy()
    return out


def fit_logistic_head(model: EmbeddingClassifier, data: Encoded, c: float, seed: int) -> None:
    """Fit a logistic regression on the embeddings of `data` and copy it into the model's head."""
    x, y = embed_all(model, data), np.asarray(data.labels)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    k = model.head.out_features
    weight, bias = np.zeros((k, x.shape[1]), np.float32), np.zeros(k, np.float32)
    if len(clf.classes_) == 2:
        # softmax over (0, w·x + b) is the logistic model's sigmoid exactly
        weight[clf.classes_[1]], bias[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        weight[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
        # classes absent from the training data never win
        bias[np.setdiff1d(np.arange(k), clf.classes_)] = -1e4
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))


def fit_setfit(
    model: EmbeddingClassifier, recipe: Recipe, train: Encoded, dev: Encoded, tuner: FineTuner
) -> TrainResult:
    """Train `model` SetFit-style on `train` and return what was measured (dev is not needed)."""
    opts = recipe.train.setfit or SetFitOptions()
    model.to(tuner.device)
    steps, samples, seconds, loss = _contrastive_phase(model, opts, train, tuner)
    fit_logistic_head(model, train, opts.head_c, tuner.seed)
    return TrainResult(
        steps=steps,
        epochs_run=opts.pair_epochs,
        train_samples=samples,
        train_seconds=round(seconds, 3),
        samples_per_s=round(samples / max(seconds, 1e-9), 2),
        best_metric=None,
        stopped_early=False,
        resumed_from_step=None,
        history=[{"step": steps, "contrastive_loss": loss}],
        stop_reason="epochs",
        stopped_because=(
            f"SetFit trains a fixed train.setfit.pair_epochs={opts.pair_epochs} over its pairs, "
            "then fits the head; train.epochs does not apply"
        ),
    )


def _prepare(model: Any, recipe: Recipe) -> Any:
    return model


register_training_method(
    builtin("setfit", _prepare, build=build_embedding_classifier, fit=fit_setfit)
)
