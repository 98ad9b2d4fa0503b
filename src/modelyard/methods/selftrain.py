"""Self-training: label unlabelled texts with the model's own confident predictions and
train on them too, round by round.

Each round predicts the unlabelled rows not used yet, keeps those whose top probability
reaches the threshold (or, with `top_fraction`, that share of the pool, most confident
first: curriculum labelling, for models whose confidence never reaches a threshold), balances them to the class shares of the labelled training data
(so the majority class does not snowball), adds them, and trains further. The round with
the best dev score is kept, and the gain over the labelled-only model is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.data.load import read_table
from modelyard.data.splits import Split
from modelyard.errors import DataError
from modelyard.models.encoding import Encoded, encode_split
from modelyard.recipe import DataConfig, Recipe, SelfTrainingConfig
from modelyard.trainer.loop import TrainResult

Fit = Callable[[Encoded], TrainResult]
Predict = Callable[[Encoded], np.ndarray]


def select_pseudo_labels(
    probs: np.ndarray,
    threshold: float,
    shares: np.ndarray,
    max_per_class: int | None = None,
    total: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (row indices, labels) of the pseudo-labels to add, most confident first per class.

    Only rows whose top probability is at least `threshold` qualify; per class, the count
    follows `shares` (the class shares of the labelled data), limited by the class with the
    fewest qualifying rows relative to its share, by `max_per_class`, and by `total` rows
    in all (split by `shares`).
    """
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    eligible = confidence >= threshold
    counts = np.bincount(predicted[eligible], minlength=probs.shape[1])
    wanted = shares > 0
    scale = float(np.min(counts[wanted] / shares[wanted])) if wanted.any() else 0.0
    take = np.floor(scale * shares + 1e-9).astype(int)
    if max_per_class is not None:
        take = np.minimum(take, max_per_class)
    if total is not None:
        take = np.minimum(take, np.floor(total * shares + 1e-9).astype(int))
    rows: list[int] = []
    labels: list[int] = []
    for label, n in enumerate(take):
        at = np.nonzero(eligible & (predicted == label))[0]
        best = at[np.argsort(-confidence[at], kind="stable")][:n]
        rows += best.tolist()
        labels += [label] * len(best)
    return np.asarray(rows, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def read_unlabelled(cfg: SelfTrainingConfig, data: DataConfig) -> Split:
    """Return the non-empty texts of the unlabelled file (redacted when data.redact_pii says so).

    Raises DataError for an unreadable file or a missing text column.
    """
    table = read_table(cfg.unlabelled)
    columns = [data.text_column] + ([data.text_pair_column] if data.text_pair_column else [])
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{cfg.unlabelled} (train.self_training.unlabelled): no column(s) {', '.join(missing)}; "
            f"columns are: {', '.join(map(str, table.columns))}. It needs the data's text column."
        )
    keep = table[data.text_column].str.strip().ne("")
    texts = table.loc[keep, data.text_column].str.strip().tolist()
    pairs = table.loc[keep, data.text_pair_column].tolist() if data.text_pair_column else None
    if data.redact_pii:
        from modelyard.data.pii import redact_texts

        texts = redact_texts(texts, data.pii)[0]
        pairs = redact_texts(pairs, data.pii)[0] if pairs is not None else None
    if not texts:
        raise DataError(f"{cfg.unlabelled}: no non-empty texts to pseudo-label")
    return Split(texts, [0] * len(texts), pairs, str(cfg.unlabelled))


def _accuracy(predict: Predict, data: Encoded) -> float | None:
    if len(data) == 0:
        return None
    return float((predict(data).argmax(axis=1) == np.asarray(data.labels)).mean())


def _extend(train: Encoded, pool: Encoded, rows: np.ndarray, labels: np.ndarray) -> Encoded:
    types = None
    if train.token_type_ids is not None and pool.token_type_ids is not None:
        types = train.token_type_ids + [pool.token_type_ids[i] for i in rows]
    return Encoded(
        train.input_ids + [pool.input_ids[i] for i in rows],
        types,
        train.labels + labels.tolist(),
        train.truncated,
    )


@dataclass
class _Best:
    dev: float | None
    state: dict[str, torch.Tensor]
    round: int


def _snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def self_train(
    cfg: SelfTrainingConfig,
    model: Any,
    fit: Fit,
    predict: Predict,
    data: tuple[Encoded, Encoded, Encoded],
    pool: Encoded,
) -> dict[str, Any]:
    """Run `cfg.rounds` rounds of self-training on an already trained `model` and return the
    report: one entry per round (round 0 is the labelled-only model) and the gains.

    `fit` trains `model` further on an Encoded set; `predict` returns class probabilities.
    `data` is (train, dev, test). The best round by dev accuracy is loaded into `model`.
    """
    train, dev, test = data
    classes = predict(_subset(pool, np.arange(1))).shape[1]
    shares = np.bincount(train.labels, minlength=classes) / max(len(train), 1)
    rounds = [_round_entry(0, 0, [], predict, dev, test)]
    best = _Best(rounds[0]["dev_accuracy"], _snapshot(model), 0)
    unused = np.arange(len(pool))
    current = train
    for number in range(1, cfg.rounds + 1):
        probs = predict(_subset(pool, unused)) if len(unused) else np.zeros((0, len(shares)))
        rows, labels = _select(cfg, probs, shares, len(pool))
        if len(rows) == 0:
            rounds.append({"round": number, "added": 0, "stopped": _why_none(cfg, probs)})
            break
        current = _extend(current, pool, unused[rows], labels)
        unused = np.delete(unused, rows)
        fit(current)
        rounds.append(_round_entry(number, len(rows), labels.tolist(), predict, dev, test))
        if best.dev is None or (rounds[-1]["dev_accuracy"] or 0.0) > best.dev:
            best = _Best(rounds[-1]["dev_accuracy"], _snapshot(model), number)
    model.load_state_dict(best.state)
    return _report(cfg, rounds, best.round, len(pool))


def _select(
    cfg: SelfTrainingConfig, probs: np.ndarray, shares: np.ndarray, pool: int
) -> tuple[np.ndarray, np.ndarray]:
    if cfg.top_fraction is None:
        return select_pseudo_labels(probs, cfg.threshold, shares, cfg.max_per_class)
    total = max(1, round(cfg.top_fraction * pool))
    return select_pseudo_labels(probs, 0.0, shares, cfg.max_per_class, total)


def _why_none(cfg: SelfTrainingConfig, probs: np.ndarray) -> str:
    if len(probs) == 0:
        return "every unlabelled row is already pseudo-labelled"
    if cfg.top_fraction is not None:
        return "the model predicts no row of some class, so no class-balanced set exists"
    return (
        f"no unlabelled row reached threshold {cfg.threshold} (the most confident reached "
        f"{float(probs.max(axis=1).max()):.3f}); lower train.self_training.threshold or set "
        "top_fraction instead"
    )


def _subset(pool: Encoded, at: np.ndarray) -> Encoded:
    types = [pool.token_type_ids[i] for i in at] if pool.token_type_ids is not None else None
    return Encoded([pool.input_ids[i] for i in at], types, [0] * len(at), 0)


def _round_entry(
    number: int, added: int, labels: list[int], predict: Predict, dev: Encoded, test: Encoded
) -> dict[str, Any]:
    return {
        "round": number,
        "added": added,
        "added_per_class": np.bincount(labels).tolist() if labels else [],
        "dev_accuracy": _accuracy(predict, dev),
        "test_accuracy": _accuracy(predict, test),
    }


def _gain(rounds: list[dict[str, Any]], kept: int, key: str) -> float | None:
    start, end = rounds[0].get(key), rounds[kept].get(key)
    return None if start is None or end is None else round(end - start, 4)


def _report(
    cfg: SelfTrainingConfig, rounds: list[dict[str, Any]], kept: int, pool: int
) -> dict[str, Any]:
    return {
        "unlabelled": str(cfg.unlabelled),
        "unlabelled_rows": pool,
        "threshold": None if cfg.top_fraction is not None else cfg.threshold,
        "top_fraction": cfg.top_fraction,
        "rounds": rounds,
        "kept_round": kept,
        "pseudo_labels_used": sum(r["added"] for r in rounds[1 : kept + 1]),
        "dev_accuracy_gain": _gain(rounds, kept, "dev_accuracy"),
        "test_accuracy_gain": _gain(rounds, kept, "test_accuracy"),
    }


def run_self_training(
    recipe: Recipe, session: Any, tuner: Any, tokenizer: Any, data: tuple[Encoded, Encoded, Encoded]
) -> dict[str, Any]:
    """Self-train the session's model as `recipe.train.self_training` says; return the report.

    Training rounds go through `session.fit` with `tuner`, so every training method works.
    Raises DataError for an unreadable unlabelled file.
    """
    from modelyard.models.predict import predict_logits

    cfg = recipe.train.self_training
    assert cfg is not None
    pool = encode_split(tokenizer, read_unlabelled(cfg, recipe.data), recipe.model.max_length)
    pad = tokenizer.pad_token_id or 0

    def predict(encoded: Encoded) -> np.ndarray:
        logits = predict_logits(session.model, encoded, pad, tuner.device, tuner.dtype)
        return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()

    def fit(encoded: Encoded) -> TrainResult:
        return session.fit(tuner, encoded, data[1], False)

    return self_train(cfg, session.model, fit, predict, data, pool)
